"""A Redis cache that degrades instead of failing: every operation goes through the Redis resource's
breaker, and a failure (or a skipped call while the breaker is open) is counted in
harness_cache_errors_total{op} and answered with `UNAVAILABLE` instead of an exception.

Invalidations that fail are remembered (`pending`) and retried in the background until Redis
takes them; meanwhile a read of a pending key bypasses the cache and nothing is cached under it,
so a stale entry is never served after a committed write, and it is removed within
`RETRY_EVERY_S` of Redis answering again. The memory this takes is bounded by the key space.
If the process dies with invalidations pending, the entry's TTL is the bound.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from redis.exceptions import RedisError

from targets.resources import Redis
from targets.scaling_reads.metrics import CACHE_ERRORS, CACHE_INVALIDATIONS

# What a dead, stalled or overloaded Redis raises through redis-py asyncio.
FAILURES = (RedisError, OSError, asyncio.TimeoutError)
RETRY_EVERY_S = 0.25
RETRY_BATCH = 500


class Unavailable:
    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = Unavailable()


class Cache:
    """One variant's view of Redis: guarded calls, metric children bound once, deferred invalidations."""

    def __init__(self, redis: Redis, module: str, variant: str, ttl_s: int) -> None:
        self.redis, self.client, self.breaker, self.ttl_s = redis, redis.client, redis.breaker, ttl_s
        self.errors = {op: CACHE_ERRORS.labels(module, variant, op) for op in ("get", "set", "delete")}
        self.invalidations = {reason: CACHE_INVALIDATIONS.labels(module, variant, reason)
                              for reason in ("write", "expire", "flush")}
        self.pending: dict[str, int] = {}  # key -> generation of its latest failed invalidation
        self._generation = itertools.count(1)
        self._retrier: asyncio.Task | None = None

    async def call(self, op: str, function: Callable[..., Awaitable[Any]], *args, **kwargs) -> Any:
        """`function(*args, **kwargs)` unless the breaker is open; UNAVAILABLE when it did not happen."""
        if not self.breaker.allow():
            self.errors[op].inc()
            return UNAVAILABLE
        try:
            result = await function(*args, **kwargs)
        except FAILURES:
            self.breaker.failure()
            self.errors[op].inc()
            return UNAVAILABLE
        self.breaker.success()
        return result

    async def get(self, key: str) -> bytes | None | Unavailable:
        if key in self.pending:  # its invalidation has not reached Redis yet: the entry may be stale
            return UNAVAILABLE
        return await self.call("get", self.redis.get, key)

    async def set(self, key: str, value: bytes) -> None:
        if key not in self.pending:
            await self.call("set", self.client.set, key, value, ex=self.ttl_s)

    async def invalidate(self, keys: Sequence[str], reason: str) -> bool:
        """Delete `keys` (an entry and what belongs to it); never raises. False: deferred to the retrier."""
        if await self.call("delete", self.client.delete, *keys) is UNAVAILABLE:
            self._remember(keys)
            return False
        self.invalidations[reason].inc()
        return True

    async def flush(self, pattern: str) -> int | Unavailable:
        """Unlink every key matching `pattern` (admin: it may take a while; not through the breaker)."""
        removed, batch = 0, []
        try:
            async for key in self.client.scan_iter(match=pattern, count=10_000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed += await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self.client.unlink(*batch)
        except FAILURES:
            self.errors["delete"].inc()
            return UNAVAILABLE
        self.invalidations["flush"].inc(removed)
        return removed

    def _remember(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.pending[key] = next(self._generation)
        if self._retrier is None or self._retrier.done():
            self._retrier = asyncio.get_running_loop().create_task(self._retry_pending())

    async def _retry_pending(self) -> None:
        while self.pending:
            await asyncio.sleep(RETRY_EVERY_S)
            if not self.breaker.allow():
                continue
            batch = dict(itertools.islice(self.pending.items(), RETRY_BATCH))
            try:
                await self.client.delete(*batch)
            except FAILURES:
                self.breaker.failure()
                self.errors["delete"].inc()
                continue
            self.breaker.success()
            self.invalidations["write"].inc(len(batch))
            for key, generation in batch.items():  # a key that failed again meanwhile stays pending
                if self.pending.get(key) == generation:
                    del self.pending[key]
