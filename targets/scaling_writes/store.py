"""Scaling Writes' data in PostgreSQL, the broker's topic, and the two batched writers.

The events table has NO unique constraint on `id`, on purpose: a duplicate is a second row, which
the invariants count. Only a plain index serves the consumer's existence check and the invariants.

Its metrics are in metrics.py; its settings in settings.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from pydantic_settings import BaseSettings, SettingsConfigDict

from targets.resources import Postgres, advisory_lock, advisory_lock_id
from targets.scaling_writes.metrics import BATCH_ROWS, FLUSH_FAILURES, FLUSH_SECONDS, ROWS

MODULE = "scaling_writes"
WRITER_LOCK = advisory_lock_id(MODULE, "writer")  # held by every idempotent write (copy_idempotent)
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


class BrokerSettings(BaseSettings):
    """The broker's address: the stack's (HARNESS_KAFKA_BOOTSTRAP), not one of the module's settings."""

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


async def create_schema(pg: Postgres) -> None:
    # several processes (the target's workers, the consumer) may start at once
    async with pg.pool.connection() as conn, advisory_lock(conn, MODULE, "schema"):
        await conn.execute(SCHEMA)


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
