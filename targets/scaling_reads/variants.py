"""Scaling Reads' variants, one class per read strategy behind one interface (`read`, `add_review`,
`set_price`); the cached ones also `expire` and `flush`. See targets/scaling_reads/main.py for what each
stands for, the key scheme and what happens when Redis is gone.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from targets.scaling_reads.cache import UNAVAILABLE, Cache
from targets.scaling_reads.metrics import CACHE_LOOKUPS
from targets.scaling_reads.store import Catalogue

MODULE = "scaling_reads"
LOCK_MS = 2000  # a single-flight recompute or a lease outlives any product read by far
REMOTE_WAIT_S, REMOTE_POLL_S = 1.0, 0.005

RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# SET the entry only while the miss's lease is still the current one; a write's invalidation deletes
# the lease, so a value read before that write is dropped here instead of cached.
FILL_WITH_LEASE = """
if redis.call('get', KEYS[2]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('del', KEYS[2])
  return 1
end
return 0
"""


def key(variant: str, kind: str, pid: int) -> str:
    return f"{MODULE}:{variant}:{kind}:{pid}"


class Variant(Protocol):
    """What every variant does; the cached ones (CacheAside and its subclasses) also expire and flush."""

    async def read(self, pid: int) -> bytes: ...

    async def add_review(self, pid: int, rating: int, body: str, tag: str | None) -> tuple[int, str | None]:
        """(the review's id, the primary's WAL position after the commit, where the variant tracks it)"""

    async def set_price(self, pid: int, price_cents: int) -> tuple[int, str | None]:
        """(the product's new version, the WAL position as above)"""


class Noop:
    """No I/O at all: the floor."""

    async def read(self, pid: int) -> bytes:
        return b'{"id": %d}' % pid

    async def add_review(self, pid: int, rating: int, body: str, tag: str | None) -> tuple[int, str | None]:
        return 0, None

    async def set_price(self, pid: int, price_cents: int) -> tuple[int, str | None]:
        return 0, None


class Direct:
    """Every read queries PostgreSQL."""

    def __init__(self, db: Catalogue) -> None:
        self.db = db

    async def read(self, pid: int) -> bytes:
        return await self.db.load(pid)

    async def add_review(self, pid: int, rating: int, body: str, tag: str | None) -> tuple[int, str | None]:
        return await self.db.add_review(pid, rating, body, tag)

    async def set_price(self, pid: int, price_cents: int) -> tuple[int, str | None]:
        return await self.db.set_price(pid, price_cents)


class CacheAside(Direct):
    """Redis first; on a miss PostgreSQL, then SET with a TTL; a committed write deletes the key.
    Without Redis (UNAVAILABLE) it reads PostgreSQL and caches nothing."""

    def __init__(self, db: Catalogue, cache: Cache, variant: str) -> None:
        super().__init__(db)
        self.cache, self.variant = cache, variant
        self.hits, self.misses, self.coalesced = (CACHE_LOOKUPS.labels(MODULE, variant, result)
                                                  for result in ("hit", "miss", "coalesced"))

    def keys(self, pid: int) -> tuple[str, ...]:
        """What an invalidation deletes: the entry (and, for leases, the lease)."""
        return (key(self.variant, "product", pid),)

    async def read(self, pid: int) -> bytes:
        entry = key(self.variant, "product", pid)
        cached = await self.cache.get(entry)
        if cached is UNAVAILABLE:
            return await self.db.load_entry(pid)
        if cached is not None:
            self.hits.inc()
            return cached
        self.misses.inc()
        return await self.fill(entry, pid)

    async def fill(self, entry: str, pid: int) -> bytes:
        value = await self.db.load_entry(pid)
        await self.cache.set(entry, value)
        return value

    async def add_review(self, pid: int, rating: int, body: str, tag: str | None) -> tuple[int, str | None]:
        written = await super().add_review(pid, rating, body, tag)
        await self.cache.invalidate(self.keys(pid), "write")  # never raises: the write is committed
        return written

    async def set_price(self, pid: int, price_cents: int) -> tuple[int, str | None]:
        written = await super().set_price(pid, price_cents)
        await self.cache.invalidate(self.keys(pid), "write")
        return written

    async def expire(self, pid: int) -> bool:
        return await self.cache.invalidate(self.keys(pid), "expire")

    async def flush(self) -> int | object:
        return await self.cache.flush(f"{MODULE}:{self.variant}:*")


class SingleFlight(CacheAside):
    """cache_aside, plus one recompute per key at a time: in this process through a shared future,
    across processes through a Redis lock whose holder fills the entry while the others poll for it.
    Without Redis the in-process sharing still spares PostgreSQL the duplicates."""

    def __init__(self, db: Catalogue, cache: Cache, variant: str) -> None:
        super().__init__(db, cache, variant)
        self.flights: dict[int, asyncio.Future] = {}
        self.release_lock = cache.client.register_script(RELEASE_LOCK)

    async def read(self, pid: int) -> bytes:
        entry = key(self.variant, "product", pid)
        cached = await self.cache.get(entry)
        if cached is not None and cached is not UNAVAILABLE:
            self.hits.inc()
            return cached
        if pid in self.flights:
            self.coalesced.inc()
            return await asyncio.shield(self.flights[pid])
        flight = self.flights[pid] = asyncio.get_running_loop().create_future()
        try:
            value = await (self.db.load_entry(pid) if cached is UNAVAILABLE else self.fill(entry, pid))
            flight.set_result(value)
            return value
        except Exception as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved here, so a future nobody awaited does not warn
            raise
        except BaseException:
            flight.cancel()
            raise
        finally:
            del self.flights[pid]

    async def fill(self, entry: str, pid: int) -> bytes:
        lock, token = key(self.variant, "lock", pid), os.urandom(8).hex()
        locked = await self.cache.call("set", self.cache.client.set, lock, token, nx=True, px=LOCK_MS)
        if locked is UNAVAILABLE:
            return await self.db.load_entry(pid)
        if locked:
            try:
                self.misses.inc()
                return await super().fill(entry, pid)
            finally:
                await self.cache.call("delete", self.release_lock, keys=[lock], args=[token])
        for _ in range(int(REMOTE_WAIT_S / REMOTE_POLL_S)):  # another process recomputes: wait for its value
            await asyncio.sleep(REMOTE_POLL_S)
            cached = await self.cache.get(entry)
            if cached is UNAVAILABLE:
                break
            if cached is not None:
                self.coalesced.inc()
                return cached
        self.misses.inc()  # the lock holder died or is slow: serve, don't cache
        return await self.db.load_entry(pid)


class Lease(CacheAside):
    """cache_aside with leases (Scaling Memcache, NSDI 2013): a miss takes a lease token for the key;
    an invalidation deletes the entry and the lease; the fill is cached only if the miss's token is
    still the current one. A miss without a lease reads PostgreSQL and caches nothing."""

    def __init__(self, db: Catalogue, cache: Cache, variant: str) -> None:
        super().__init__(db, cache, variant)
        self.fill_with_lease = cache.client.register_script(FILL_WITH_LEASE)

    def keys(self, pid: int) -> tuple[str, ...]:
        return key(self.variant, "product", pid), key(self.variant, "lease", pid)

    async def fill(self, entry: str, pid: int) -> bytes:
        lease, token = key(self.variant, "lease", pid), os.urandom(8).hex()
        leased = await self.cache.call("set", self.cache.client.set, lease, token, nx=True, px=LOCK_MS)
        value = await self.db.load_entry(pid)
        if leased is True and entry not in self.cache.pending:
            await self.cache.call("set", self.fill_with_lease, keys=[entry, lease],
                                  args=[token, value, self.cache.ttl_s])
        return value
