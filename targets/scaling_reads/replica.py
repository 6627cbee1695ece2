"""Reads from a streaming replica (a hot standby of the primary), with and without read-your-writes.

`Replica` is the standby as a resource the target can live without (`optional`): reads that find it
gone, frozen or refusing fall back to the primary (slower, not down). Each replica read is bounded
(`READ_TIMEOUT_S`), and a breaker (targets/resources.py) stops trying a replica that keeps failing,
probing it once per second until it answers again. A read that overruns is abandoned, not cancelled:
cancelling a query makes psycopg send the server a cancel request and wait for it, which a frozen
server never answers; the abandoned read returns its connection when the replica answers again.

Its sampler measures the replica's lag every
`SAMPLE_EVERY_S`: bytes of WAL not replayed yet, and how long ago the primary wrote the oldest WAL the
replica has not replayed (from the primary's WAL positions it sampled), since pg_stat_replication's
lag columns go NULL while the standby is idle. The gauges show the worst sample of the last second.
It also counts the CPU the replica's WAL replay (its startup process) uses, read from /proc.

Read-your-writes (`replica_ryw`), as GitLab's database load balancing does it: a write answers with
the primary's WAL position after its commit, which the client keeps (the cookie `ryw_lsn`, for
`RYW_WINDOW_S`); a read with that position goes to the replica only once the replica has replayed
it, else to the primary. The replica's replay position is asked when a read needs a newer one than
last seen, so a client that wrote nothing lately costs nothing more than `replica`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from targets.resources import Breaker, Postgres
from targets.scaling_reads.metrics import REPLICA_LAG_BYTES, REPLICA_LAG_SECONDS, REPLICA_READS, REPLICA_REPLAY_CPU
from targets.scaling_reads.store import Catalogue

READ_TIMEOUT_S = 1.0
SAMPLE_EVERY_S = 0.1
RYW_WINDOW_S = 30
T = TypeVar("T")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPLICA_VARIANTS = ("replica", "replica_ryw")


def lsn_int(lsn: str) -> int:
    """'16/B374D848' -> its position in bytes."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


async def bounded(work: Coroutine[Any, Any, T], timeout_s: float = READ_TIMEOUT_S) -> T:
    """`work`'s result, or TimeoutError after `timeout_s`, leaving `work` to finish on its own (its
    outcome is then dropped): see the module's docstring for why it is not cancelled."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if task not in done:
        task.add_done_callback(_drop)
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    return task.result()


def _drop(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so an abandoned read's failure does not warn


class Replica:
    """The standby's pool, opened in the background (the target starts without it), and its lag sampler."""

    name, optional = "postgres_replica", True

    def __init__(self, dsn: str, primary: Postgres, module: str, *, size: int = 16) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(dsn, min_size=min(4, size), max_size=size, timeout=READ_TIMEOUT_S,
                                        open=False, kwargs={"autocommit": True},
                                        check=AsyncConnectionPool.check_connection)
        self.primary, self.breaker = primary, Breaker(threshold=3, cooldown_s=1.0)
        self.replayed = 0  # the highest replay position seen: the replica has replayed at least this much
        self.lag_bytes = [REPLICA_LAG_BYTES.labels(module, v) for v in REPLICA_VARIANTS]
        self.lag_seconds = [REPLICA_LAG_SECONDS.labels(module, v) for v in REPLICA_VARIANTS]
        self.replay_cpu = [REPLICA_REPLAY_CPU.labels(module, v) for v in REPLICA_VARIANTS]
        self._replay_pid: int | None = None
        self._replay_cpu_s: float | None = None
        self._sampler: asyncio.Task | None = None

    async def open(self) -> None:
        await self.pool.open(wait=False)
        self._sampler = asyncio.get_running_loop().create_task(self._sample())

    async def check(self) -> None:
        async with self.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        await self.pool.close()

    async def replay_position(self) -> int | None:
        """The replica's replay position now (and remembered), or None when it does not answer in time."""
        try:
            row = await bounded(self._query("SELECT pg_last_wal_replay_lsn()::text"))
        except Exception:  # gone, frozen, refusing: the sampler and the reads carry on without it
            return None
        if row[0] is not None:
            self.replayed = max(self.replayed, lsn_int(row[0]))
        return self.replayed

    async def _query(self, statement: str) -> tuple:
        async with self.pool.connection() as conn:
            return await (await conn.execute(statement)).fetchone()

    async def _count_replay_cpu(self) -> None:
        """CPU seconds of the replica's startup process (the one replaying WAL), from /proc: on the embedded
        stack it runs on this host; elsewhere (compose) it is not counted."""
        try:
            if self._replay_pid is None:
                row = await bounded(self._query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'"))
                self._replay_pid = row[0] if row else 0
            fields = Path(f"/proc/{self._replay_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except Exception:  # gone (restarted: look it up again), not on this host, or the replica did not answer
            self._replay_pid = None
            return
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        if self._replay_cpu_s is not None and seconds >= self._replay_cpu_s:
            for counter in self.replay_cpu:
                counter.inc(seconds - self._replay_cpu_s)
        self._replay_cpu_s = seconds

    async def _sample(self) -> None:
        history: collections.deque[tuple[float, int]] = collections.deque(maxlen=6000)  # 10 min of samples
        recent: collections.deque[tuple[float, int, float]] = collections.deque()  # the last second's lags
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S)
            try:
                async with asyncio.timeout(READ_TIMEOUT_S), self.primary.pool.connection() as conn:
                    row = await (await conn.execute("SELECT pg_current_wal_lsn()::text")).fetchone()
            except Exception:
                continue
            now, written = time.time(), lsn_int(row[0])
            history.append((now, written))
            if not self.breaker.allow():  # the reads found the replica failing: one probe a second, theirs or ours
                continue
            replayed = await self.replay_position()
            if replayed is None:
                self.breaker.failure()
                continue
            self.breaker.success()
            await self._count_replay_cpu()
            behind = max(0, written - replayed)
            # the oldest sample whose position the replica has not reached: it is at least that far behind
            since = next((t for t, position in history if position > replayed), now)
            recent.append((now, behind, now - since if behind else 0.0))
            while recent[0][0] < now - 1.0:
                recent.popleft()
            # the worst of the last second's samples: Prometheus scrapes once a second, and a lag that
            # came and went between two scrapes still shows
            for gauge in self.lag_bytes:
                gauge.set(max(sample[1] for sample in recent))
            for gauge in self.lag_seconds:
                gauge.set(max(sample[2] for sample in recent))


class ReplicaReads:
    """Reads from the replica, writes to the primary; a read the replica cannot answer goes to the primary."""

    def __init__(self, db: Catalogue, replica: Replica, module: str, variant: str) -> None:
        self.db, self.replica = db, replica
        self.on_primary, self.on_replica = (REPLICA_READS.labels(module, variant, server)
                                            for server in ("primary", "replica"))

    async def read(self, pid: int, after_lsn: str | None = None) -> bytes:
        if self.replica.breaker.allow() and await self._caught_up(after_lsn):
            try:
                value = await bounded(self._load(pid))
            except Exception as exc:  # a 404 is an answer; anything else means the replica failed us
                if getattr(exc, "status_code", None) == 404:
                    raise
                self.replica.breaker.failure()
            else:
                self.replica.breaker.success()
                self.on_replica.inc()
                return value
        self.on_primary.inc()
        return await self.db.load(pid)

    async def _load(self, pid: int) -> bytes:
        async with self.replica.pool.connection() as conn:
            return await self.db.load(pid, conn)

    async def _caught_up(self, after_lsn: str | None) -> bool:
        if after_lsn is None:
            return True
        wanted = lsn_int(after_lsn)
        if self.replica.replayed >= wanted:
            return True
        replayed = await self.replica.replay_position()
        return replayed is not None and replayed >= wanted

    async def add_review(self, pid: int, rating: int, body: str, tag: str | None) -> tuple[int, str | None]:
        return await self.db.add_review(pid, rating, body, tag)

    async def set_price(self, pid: int, price_cents: int) -> tuple[int, str | None]:
        return await self.db.set_price(pid, price_cents)
