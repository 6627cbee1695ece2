"""Scaling Writes' consumer: drains the `queued` variant's topic into PostgreSQL
(`python -m targets.scaling_writes.consumer`, the stack's process `scaling_writes_consumer`).

At least once, made effectively once: it reads a batch (getmany), writes it in one transaction with
COPY into a temporary table and `INSERT ... WHERE NOT EXISTS` on the event id (idempotent: a record
delivered twice leaves one row), and commits the offsets only after that transaction committed. A
consumer killed between the two gets the same records again, and the id check absorbs them.

A lag monitor beside it samples every 0.25 s: each partition's high watermark (from a fetch by a
group-less consumer; tansu's ListOffsets under-reports it) minus the group's committed offset. It
sets harness_writes_consumer_lag and, after a backlog (lag above HARNESS_SCALING_WRITES_CAUGHT_UP_LAG),
harness_writes_consumer_catchup_seconds: how long the consumer was behind (from the first sample over the
threshold, which after a restart is the consumer's start, until the lag is back under it).

Settings: HARNESS_SCALING_WRITES_* (settings.py, the spec's class). Serves on 127.0.0.1:HARNESS_PROCESS_PORT
(run alone: settings.CONSUMER_PORT, the spec's port): /healthz, /metrics, and /lag (JSON; the locustfile's
settle polls it). Without a database the loop retries its batch with a backoff; it never skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque

import psycopg
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import TargetSettings, metrics
from targets.resources import Postgres
from targets.scaling_writes.metrics import (
    BATCH_ROWS,
    CATCHUP,
    CAUGHT_UP,
    CONSUMED,
    FLUSH_SECONDS,
    LAG,
    REDELIVERED,
    ROWS,
    VISIBLE,
    VISIBLE_P95,
)
from targets.scaling_writes.settings import CONSUMER_PORT, Settings
from targets.scaling_writes.store import (
    MODULE,
    TOPIC,
    BrokerSettings,
    copy_idempotent,
    create_schema,
    decode,
    ensure_topic,
)

GROUP = "scaling_writes"
VARIANT = "queued"
SAMPLE_S, HOLD_S = 0.25, 5.0  # lag sampling period; how long a catch-up time stays on its gauge
log = logging.getLogger("scaling_writes.consumer")


def labelled(metric):
    return metric.labels(MODULE, VARIANT)


class Consumer:
    """The consuming loop and what it reports."""

    def __init__(self, dsn: str, bootstrap: str, max_records: int) -> None:
        self.dsn, self.bootstrap, self.max_records = dsn, bootstrap, max_records
        self.conn: psycopg.AsyncConnection | None = None  # one connection, opened again after any failure
        self.consumer: AIOKafkaConsumer | None = None  # built in run(): aiokafka needs the running loop
        self.delays: deque[tuple[float, float]] = deque(maxlen=200_000)  # (committed at, delay s)
        self.rows, self.sizes, self.flush = labelled(ROWS), labelled(BATCH_ROWS), labelled(FLUSH_SECONDS)
        self.consumed, self.redelivered, self.visible = labelled(CONSUMED), labelled(REDELIVERED), labelled(VISIBLE)

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=self.bootstrap, group_id=GROUP,
                                         enable_auto_commit=False, auto_offset_reset="earliest",
                                         session_timeout_ms=3000, heartbeat_interval_ms=500,
                                         fetch_max_wait_ms=100,  # default 500: it would add to every delay
                                         max_poll_interval_ms=300_000)
        await self.consumer.start()
        try:
            while True:
                try:
                    batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
                    if batch:
                        await self.write(batch)
                except KafkaError as exc:  # a rebalance or a broker hiccup: uncommitted records come again
                    log.warning("consumer error (%r); going on", exc)
                    await asyncio.sleep(0.5)
        finally:
            await self.consumer.stop()
            if self.conn is not None:
                await self.conn.close()

    async def copy(self, rows: list) -> int:
        if self.conn is None or self.conn.closed:
            self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=5)
        try:
            return await copy_idempotent(self.conn, rows)
        except Exception:
            await self.conn.close()  # broken or not, the next try starts on a fresh connection
            self.conn = None
            raise

    async def write(self, batch: dict) -> None:
        records = [record for records in batch.values() for record in records]
        rows = [decode(record.value) for record in records]
        started = time.perf_counter()
        for attempt in range(1_000_000):  # bounded in count; in time by the backoff (about 1 s per try)
            try:
                new = await self.copy(rows)
                break
            except Exception as exc:  # the database is down or frozen: retry the same batch, never skip it
                log.warning("batch of %d not written (%s); retry %d", len(rows), exc, attempt + 1)
                await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
        now = time.time()
        self.flush.observe(time.perf_counter() - started)
        self.sizes.observe(len(rows))
        self.rows.inc(new)
        self.consumed.inc(len(rows))
        self.redelivered.inc(len(rows) - new)
        for record in records:
            delay = max(0.0, now - record.timestamp / 1000)
            self.visible.observe(delay)
            self.delays.append((now, delay))
        await self.consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})

    def recent_p95(self, window_s: float = 5.0) -> float:
        cutoff = time.time() - window_s
        while self.delays and self.delays[0][0] < cutoff:
            self.delays.popleft()
        if not self.delays:
            return 0.0
        ordered = sorted(delay for _, delay in self.delays)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class LagMonitor:
    """Lag = high watermark - committed offset, per partition, summed; and the catch-up episodes."""

    def __init__(self, bootstrap: str, caught_up_lag: int) -> None:
        self.bootstrap, self.threshold = bootstrap, caught_up_lag
        self.sample: dict = {"lag": None, "at": 0.0}
        self.behind_since: float | None = None
        self.peak: int | None = None
        self.shown_until = 0.0

    async def run(self, consumer: Consumer) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        watcher = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                   fetch_max_bytes=1024, max_partition_fetch_bytes=1024)
        await admin.start()
        await watcher.start()
        try:
            while True:
                with contextlib.suppress(Exception):  # a sample that fails is skipped, the next one may work
                    await asyncio.wait_for(self.measure(admin, watcher), 5)
                labelled(VISIBLE_P95).set(consumer.recent_p95())
                await asyncio.sleep(SAMPLE_S)
        finally:
            await watcher.stop()
            await admin.close()

    async def measure(self, admin: AIOKafkaAdminClient, watcher: AIOKafkaConsumer) -> None:
        if not watcher.partitions_for_topic(TOPIC):
            await watcher.topics()  # refreshes the metadata
        partitions = watcher.partitions_for_topic(TOPIC) or set()
        tps = [TopicPartition(TOPIC, p) for p in sorted(partitions)]
        if not tps:
            return
        watcher.assign(tps)
        for tp in tps:
            watcher.seek(tp, 0)
        for _ in range(10):  # a fetch round per partition fills in its high watermark
            await watcher.getmany(timeout_ms=200, max_records=1)
            if all(watcher.highwater(tp) is not None for tp in tps):
                break
        high = {tp.partition: watcher.highwater(tp) or 0 for tp in tps}
        offsets = await admin.list_consumer_group_offsets(GROUP, partitions=tps)
        committed = {tp.partition: max(0, meta.offset) for tp, meta in offsets.items()}
        lag = sum(max(0, high[p] - committed.get(p, 0)) for p in high)
        self.sample = {"lag": lag, "at": time.time(), "highwater": high, "committed": committed}
        labelled(LAG).set(lag)
        self.track(lag, time.time())

    def track(self, lag: int, now: float) -> None:
        """A backlog episode runs from the first sample above the threshold (right after a restart, that is
        the consumer's start) until the lag is back under it. While it is open the gauge shows its age
        (a backlog still open when a window ends reads as long as it has lasted, never 0); once it ends,
        its length for HOLD_S, then 0, so a phase's max over its window sees only its own episodes.
        CAUGHT_UP counts the episodes that ended: a claim on the catch-up needs one."""
        if lag > self.threshold:
            self.behind_since = self.behind_since or now
            self.peak = max(self.peak or 0, lag)
            labelled(CATCHUP).set(now - self.behind_since)
        elif self.behind_since is not None:
            labelled(CATCHUP).set(now - self.behind_since)
            labelled(CAUGHT_UP).inc()
            log.info("caught up: lag peaked at %d, behind for %.2f s", self.peak, now - self.behind_since)
            self.behind_since, self.peak, self.shown_until = None, None, now + HOLD_S
        elif self.shown_until and now > self.shown_until:
            labelled(CATCHUP).set(0)
            self.shown_until = 0.0


def build() -> Starlette:
    writes, settings = Settings(), TargetSettings()
    bootstrap = BrokerSettings().kafka_bootstrap
    pg = Postgres(settings.pg_dsn, size=1)  # for the schema only
    consumer = Consumer(settings.pg_dsn, bootstrap, writes.consumer_max_records)
    monitor = LagMonitor(bootstrap, writes.caught_up_lag)
    state = {"ready": False}
    for metric in (LAG, CATCHUP, CAUGHT_UP, VISIBLE_P95):
        labelled(metric)  # a 0 series from the start: the dashboards show the consumer is there

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await pg.open()
        await create_schema(pg)
        await pg.close()
        await ensure_topic(bootstrap)
        tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(monitor.run(consumer))]
        for task in tasks:
            task.add_done_callback(lambda t: t.cancelled() or log.error("task ended: %r", t.exception()))
        state["ready"], state["tasks"] = True, tasks
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def healthz(request: Request) -> Response:
        """503 while starting, and for good once the consuming loop or the monitor has died."""
        if not state["ready"]:
            return JSONResponse({"status": "starting"}, 503)
        dead = [t.get_name() for t in state["tasks"] if t.done()]
        return JSONResponse({"status": "dead" if dead else "ok", "dead": dead}, 503 if dead else 200)

    async def lag(request: Request) -> Response:
        return JSONResponse(monitor.sample)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics), Route("/lag", lag)],
                     lifespan=lifespan)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the monitor's assign() logs at every sample
    port = int(os.environ.get("HARNESS_PROCESS_PORT", CONSUMER_PORT))
    host = os.environ.get("HARNESS_BIND", "127.0.0.1")
    uvicorn.run(build(), host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
