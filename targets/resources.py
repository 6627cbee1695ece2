"""The resources a target can declare: what `create_app` opens in its lifespan and /healthz checks.

A resource is any object with this shape (`Resource`): a `name`, whether the target can live
without it (`optional`: /healthz then says "degraded" instead of failing), and three coroutines,
`open()`, `check()` (raises when unusable) and `close()`. Each is built with its address, without
I/O, so handlers can keep a reference from the start; the lifespan does the I/O. A Kafka producer
(aiokafka's `AIOKafkaProducer`: start / partitions_for / stop) or an S3 client (aiobotocore:
enter the client context / head_bucket / exit) slot in the same way.

A resource may also carry `exception_handlers` (exception class -> handler), which `create_app` adds
to the app: Postgres maps the inputs PostgreSQL rejects to 422 and a database that is gone to 503.
psycopg is imported only when a `Postgres` is built, so a target without PostgreSQL (realtime) never
loads it. Advisory locks: `advisory_lock(conn, module, purpose)`, on an id that is the module's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    import psycopg


class Resource(Protocol):
    name: str
    optional: bool

    async def open(self) -> None: ...

    async def check(self) -> None: ...

    async def close(self) -> None: ...


async def _rejected_by_database(request: Request, exc: Exception) -> JSONResponse:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return JSONResponse({"error": f"the database rejected the input: {first_line}"}, status_code=422)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": f"database unavailable: {type(exc).__name__}"}, status_code=503)


class Postgres:
    """A psycopg 3 async pool in autocommit. A request waits up to `wait_s` for a connection. Each
    connection is checked as it is handed out (one empty round trip on loopback), so after a PostgreSQL
    restart the pool replaces its dead connections instead of failing the requests that draw them.

    Its `exception_handlers`: input the database rejects (`psycopg.DataError`) is a 422 with the
    database's message, never a 500; no connection in time or a database gone is a 503.

    `cost_of=(module, variants)`: also export what the store itself spends (commits, WAL, its CPU;
    targets/store_cost.py), labelled with the module and each variant."""

    name, optional = "postgres", False

    def __init__(self, dsn: str, *, size: int = 16, wait_s: float = 10.0,
                 cost_of: tuple[str, Sequence[str]] | None = None) -> None:
        import psycopg
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        self.dsn, self.cost_of, self.cost = dsn, cost_of, None
        self.pool = AsyncConnectionPool(dsn, min_size=min(4, size), max_size=size, timeout=wait_s, open=False,
                                        kwargs={"autocommit": True}, check=AsyncConnectionPool.check_connection)
        self.exception_handlers = {psycopg.DataError: _rejected_by_database, PoolTimeout: _database_unavailable,
                                   psycopg.OperationalError: _database_unavailable}

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)
        if self.cost_of is not None:
            from targets.store_cost import store_cost

            self.cost = store_cost(self.dsn, *self.cost_of)

    async def check(self) -> None:
        async with self.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")

    async def close(self) -> None:
        if self.cost is not None:
            self.cost.close()
        await self.pool.close()


def advisory_lock_id(module: str, purpose: str) -> int:
    """A PostgreSQL advisory lock id (a signed 64-bit integer) for one module's one purpose: stable across
    processes and releases (blake2b of "<module>:<purpose>"), and distinct across modules, so two targets
    sharing a database never wait on each other's lock."""
    digest = hashlib.blake2b(f"{module}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.asynccontextmanager
async def advisory_lock(conn: psycopg.AsyncConnection, module: str, purpose: str) -> AsyncIterator[None]:
    """Hold the session-level advisory lock of (module, purpose) on `conn` (an autocommit connection), e.g.
    while several workers of a target start at once and only one may create the schema or seed."""
    lock = advisory_lock_id(module, purpose)
    await conn.execute("SELECT pg_advisory_lock(%s)", (lock,))
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))


class Breaker:
    """Stop calling a dependency that keeps failing, so a dead one costs nothing per request.

    After `threshold` consecutive failures the breaker opens for `cooldown_s`; then it lets one call
    through per cooldown (the probe) and closes on any success. Callers ask `allow()` first and
    report `failure()` / `success()`.
    """

    def __init__(self, threshold: int = 3, cooldown_s: float = 1.0) -> None:
        self.threshold, self.cooldown_s = threshold, cooldown_s
        self.failures = 0
        self.open_until = 0.0  # time.monotonic(); 0 while closed

    @property
    def closed(self) -> bool:
        return not self.open_until

    def allow(self) -> bool:
        if not self.open_until:
            return True
        now = time.monotonic()
        if now < self.open_until:
            return False
        self.open_until = now + self.cooldown_s  # this call is the probe; the next one waits a cooldown
        return True

    def success(self) -> None:
        if self.failures:
            self.failures, self.open_until = 0, 0.0

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.cooldown_s


class Redis:
    """redis-py asyncio, bounded everywhere.

    `client` (every command but the hot path's GET) is on a blocking pool: a request waits up to
    `pool_wait_s` for a connection instead of failing at once, and connect and socket timeouts are
    bounded. It retries once, at once, on a connection error only: a pooled connection that a Redis
    restart broke reconnects instead of failing the request (against a dead Redis the retry is one
    refused connect). A timeout (a frozen Redis) is never retried: the `breaker` decides when Redis is
    worth another try.

    `get` is the hot path (a cache hit), cut to what it needs, as `harness bench` measured: one
    pooled connection, one write and one read, hiredis parsing, and one deadline (`timeout_s`) for
    the whole call. Its connections have no per-socket timeout, because redis-py wraps each write in
    `asyncio.wait_for` (a task per command) and each read in a timeout of its own; and it skips
    `execute_command`'s retry and observability wrappers. A timeout cancels the read and redis-py
    drops that connection; a connection a restart broke is retried once, on a fresh one. Together
    with the target's GC settings (targets/common.py) this took a hit from 0.50x to 0.65x the
    throughput of a no-I/O endpoint on the reference machine (README, "Hot paths").
    """

    name = "redis"

    def __init__(self, url: str, *, optional: bool = False, max_connections: int = 256, timeout_s: float = 1.0,
                 pool_wait_s: float = 2.0, breaker: Breaker | None = None) -> None:
        self.optional, self.timeout_s = optional, timeout_s
        self.breaker = breaker or Breaker()
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_wait_s, socket_timeout=timeout_s,
            socket_connect_timeout=min(timeout_s, 0.5),
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
        self.client = aioredis.Redis(connection_pool=pool)
        self.gets = aioredis.ConnectionPool.from_url(url, max_connections=max_connections, socket_timeout=None,
                                                     socket_connect_timeout=min(timeout_s, 0.5),
                                                     retry=Retry(NoBackoff(), 0))

    async def get(self, key: str) -> bytes | None:
        """GET `key` within `timeout_s` (asyncio.TimeoutError past it); redis-py's errors otherwise."""
        async with asyncio.timeout(self.timeout_s):
            conn = await self.gets.get_connection()
            try:
                try:
                    await conn.send_command("GET", key, check_health=False)
                    return await conn.read_response()
                except RedisConnectionError:  # broken by a restart: once more (send_command reconnects)
                    await conn.disconnect()
                    await conn.send_command("GET", key, check_health=False)
                    return await conn.read_response()
            finally:
                await self.gets.release(conn)

    async def open(self) -> None:
        """Nothing to wait for: connections open on first use, and an optional Redis may be down."""

    async def check(self) -> None:
        await self.client.ping()
        if not self.breaker.closed:
            raise ConnectionError("answering again, but the breaker is still open (callers skip Redis)")

    async def close(self) -> None:
        await self.client.aclose()
        await self.gets.aclose()
