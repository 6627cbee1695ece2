"""Scaling Writes' data in PostgreSQL, its metrics, and the two batched writers.

The events table has NO unique constraint on `id`, on purpose: a duplicate is a second row, which
the invariants count. Only a plain index serves the consumer's existence check and the invariants.

Metric families live here because the target and the consumer process both import this module, so
the target's /metrics describes every family the dashboard reads (the consumer's have samples only
in the consumer's own /metrics). Every series carries `module` and `variant`:

  harness_writes_rows_committed_total           counter    rows committed (new rows only for queued)
  harness_writes_batch_rows                     histogram  rows per flush (batched) / per consumer batch
  harness_writes_flush_seconds                  histogram  one flush: COPY + commit
  harness_writes_flush_failures_total           counter    flushes that failed (their requests got 503)
  harness_writes_produced_total                 counter    queued: events the broker acknowledged
  harness_writes_consumed_total                 counter    queued: records the consumer read (with redeliveries)
  harness_writes_redelivered_total              counter    queued: records skipped as already present
  harness_writes_consumer_lag                   gauge      queued: high watermark minus committed offset
  harness_writes_consumer_catchup_seconds       gauge      queued: last backlog's length, shown for 5 s after it
  harness_writes_visible_delay_seconds          histogram  queued: produce (record timestamp) to row committed
  harness_writes_visible_delay_p95_seconds      gauge      queued: p95 of that delay over the last 5 s
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from targets.resources import Postgres

MODULE = "scaling_writes"
TOPIC, PARTITIONS = "scaling_writes.events", 3
TABLE = "scaling_writes_events"
COLUMNS = ("id", "tag", "short_code", "url", "referrer", "user_agent", "clicked_at")
Row = tuple  # (id: UUID, tag, short_code, url, referrer | None, user_agent, clicked_at: float epoch s)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id uuid NOT NULL, tag text NOT NULL, short_code text NOT NULL CHECK (length(short_code) <= 16),
    url text NOT NULL, referrer text, user_agent text NOT NULL, clicked_at double precision NOT NULL,
    visible_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS {TABLE}_id ON {TABLE} (id);
CREATE INDEX IF NOT EXISTS {TABLE}_tag ON {TABLE} (tag);
"""
INSERT_ONE = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
COPY_IN = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
# The consumer's idempotent write: COPY into a temporary table, then insert only the ids not present.
# A transaction-level advisory lock serialises writers, so two consumers (a rebalance) cannot both
# insert an id that neither sees yet.
STAGE = f"CREATE TEMPORARY TABLE incoming (LIKE {TABLE} INCLUDING DEFAULTS) ON COMMIT DROP"
COPY_STAGE = f"COPY incoming ({', '.join(COLUMNS)}) FROM STDIN"
MERGE = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT DISTINCT ON (i.id) {', '.join('i.' + c for c in COLUMNS)} "
         f"FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM {TABLE} e WHERE e.id = i.id)")
WRITER_LOCK = 7_102_102


class WritesSettings(BaseSettings):
    """HARNESS_SCALING_WRITES_* (the harness's spec has the same) and the broker's address."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_SCALING_WRITES_", extra="ignore")

    batch_max_rows: int = Field(default=500, ge=1, le=10_000)
    batch_max_ms: float = Field(default=5.0, gt=0, le=1000)
    consumer_max_records: int = Field(default=2000, ge=1, le=50_000)
    caught_up_lag: int = Field(default=500, ge=0)


class BrokerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"


async def ensure_topic(bootstrap: str) -> None:
    """Create the topic explicitly (an existing one is fine): auto-creation would pick its own partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
    except KafkaError as exc:
        if "TopicAlreadyExists" not in type(exc).__name__:
            raise
    finally:
        await admin.close()


ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
SECOND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LABELS = ["module", "variant"]
ROWS = Counter("harness_writes_rows_committed", "Rows committed", LABELS)
BATCH_ROWS = Histogram("harness_writes_batch_rows", "Rows per flush", LABELS, buckets=ROW_BUCKETS)
FLUSH_SECONDS = Histogram("harness_writes_flush_seconds", "One flush: COPY and commit", LABELS,
                          buckets=SECOND_BUCKETS)
FLUSH_FAILURES = Counter("harness_writes_flush_failures", "Flushes that failed", LABELS)
PRODUCED = Counter("harness_writes_produced", "Events the broker acknowledged", LABELS)
CONSUMED = Counter("harness_writes_consumed", "Records the consumer read", LABELS)
REDELIVERED = Counter("harness_writes_redelivered", "Records skipped as already present", LABELS)
LAG = Gauge("harness_writes_consumer_lag", "High watermark minus committed offset, summed", LABELS)
CATCHUP = Gauge("harness_writes_consumer_catchup_seconds", "Last backlog episode: seconds behind", LABELS)
VISIBLE = Histogram("harness_writes_visible_delay_seconds", "Produce to row committed", LABELS,
                    buckets=SECOND_BUCKETS)
VISIBLE_P95 = Gauge("harness_writes_visible_delay_p95_seconds", "p95 of the visible delay over the last 5 s", LABELS)


async def create_schema(pg: Postgres) -> None:
    async with pg.pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock(7102)")  # several processes may start at once
        try:
            await conn.execute(SCHEMA)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(7102)")


async def insert_one(pg: Postgres, row: Row) -> None:
    async with pg.pool.connection() as conn:  # autocommit: the INSERT is its own transaction
        await conn.execute(INSERT_ONE, row)


async def copy_rows(pg: Postgres, rows: Sequence[Row]) -> None:
    """One transaction: COPY every row, then commit."""
    async with pg.pool.connection() as conn, conn.transaction():
        async with conn.cursor().copy(COPY_IN) as copy:
            for row in rows:
                await copy.write_row(row)


async def copy_idempotent(conn, rows: Sequence[Row]) -> int:
    """Write rows whose ids are not present yet, in one transaction on `conn` (an autocommit psycopg
    AsyncConnection); returns how many were new."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        await conn.execute(STAGE)
        async with conn.cursor().copy(COPY_STAGE) as copy:
            for row in rows:
                await copy.write_row(row)
        return (await conn.execute(MERGE)).rowcount


class MicroBatcher:
    """Collects rows and flushes them together at `max_rows` rows or `max_ms` after the first one.

    `submit(row)` returns once the row's batch has committed, or raises what the flush raised: each
    request is acknowledged only after its own batch commits, and a failed flush fails exactly the
    requests in it. Flushes run as tasks, so a slow flush does not hold the next batch back (the
    pool bounds how many run at once). Declared as a resource so the lifespan flushes it on shutdown.
    """

    name, optional = "batcher", False

    def __init__(self, write: Callable[[list[Row]], Awaitable[None]], max_rows: int, max_ms: float,
                 variant: str = "batched") -> None:
        self.write, self.max_rows, self.max_s = write, max_rows, max_ms / 1000
        self.rows: list[Row] = []
        self.waiters: list[asyncio.Future] = []
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task] = set()
        self.metrics = (ROWS.labels(MODULE, variant), BATCH_ROWS.labels(MODULE, variant),
                        FLUSH_SECONDS.labels(MODULE, variant), FLUSH_FAILURES.labels(MODULE, variant))

    async def submit(self, row: Row) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.rows.append(row)
        self.waiters.append(waiter)
        if len(self.rows) >= self.max_rows:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.max_s, self.flush)
        await asyncio.shield(waiter)  # a cancelled request must not cancel its batch-mates' result

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.rows:
            return
        rows, waiters, self.rows, self.waiters = self.rows, self.waiters, [], []
        task = asyncio.create_task(self._write(rows, waiters))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _write(self, rows: list[Row], waiters: list[asyncio.Future]) -> None:
        committed, sizes, seconds, failures = self.metrics
        started = time.perf_counter()
        try:
            await self.write(rows)
        except BaseException as exc:  # every waiter of this batch, and only these, gets the error
            failures.inc()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception) else RuntimeError("flush cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        seconds.observe(time.perf_counter() - started)
        sizes.observe(len(rows))
        committed.inc(len(rows))
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def open(self) -> None:
        pass

    async def check(self) -> None:
        pass

    async def close(self) -> None:
        """Flush what is pending and wait for every flush in flight."""
        self.flush()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


def encode(row: Row) -> bytes:
    """A row as the Kafka record value (JSON, about 200 bytes); the key is the id."""
    import json

    event_id, tag, code, url, referrer, agent, clicked_at = row
    return json.dumps({"id": str(event_id), "tag": tag, "short_code": code, "url": url, "referrer": referrer,
                       "user_agent": agent, "clicked_at": clicked_at}, separators=(",", ":")).encode()


def decode(value: bytes) -> Row:
    import json

    e = json.loads(value)
    return (UUID(e["id"]), e["tag"], e["short_code"], e["url"], e["referrer"], e["user_agent"],
            float(e["clicked_at"]))
