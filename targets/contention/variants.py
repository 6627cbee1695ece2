"""Dealing with Contention's six ways to claim one unit of a hot seat row; see main.py.

A little over 300 lines on purpose: the six variants stay in one file so they read side by side.

Every variant has `claim(seat, user, request_id) -> unit` and raises `Refused` when it answers no.
The write is the same statement everywhere it can be (one UPDATE of the row and one INSERT of the
sale, as a CTE), so the variants differ only in their concurrency control.

Its metrics are in metrics.py.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass

from targets.contention.metrics import CONFLICTS, HOLDS_EXPIRED, LOCK_WAIT, RETRIES, STALE, TRANSACTION
from targets.resources import Postgres, Redis

MODULE = "contention"
SELECT = "SELECT sold, capacity, version FROM contention_seats WHERE event_id = %(event)s AND seat = %(seat)s"
# The write all variants share: count the unit on the row, record the sale; {guard} is the variant's condition.
WRITE = """WITH claimed AS (
  UPDATE contention_seats SET sold = sold + 1, version = version + 1
  WHERE event_id = %(event)s AND seat = %(seat)s AND sold < capacity {guard} RETURNING sold)
INSERT INTO contention_sales (event_id, seat, unit, user_id, request_id, variant)
SELECT %(event)s, %(seat)s, sold, %(user)s, %(request)s, %(variant)s FROM claimed RETURNING unit"""
INSERT = ("INSERT INTO contention_sales (event_id, seat, unit, user_id, request_id, variant) "
          "VALUES (%(event)s, %(seat)s, %(unit)s, %(user)s, %(request)s, %(variant)s)")
ACQUIRE = ("if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
           "return redis.call('incr', KEYS[2]) end return 0")
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# KEYS: next, free, holds (unit -> expiry ms), holder (unit -> owner). ARGV: now ms, ttl ms, capacity, owner.
# Expired holds go back to the free list first; then a free unit, or the next never-sold one.
HOLD = """
local expired = redis.call('zrangebyscore', KEYS[3], '-inf', ARGV[1])
for _, unit in ipairs(expired) do
  redis.call('zrem', KEYS[3], unit); redis.call('hdel', KEYS[4], unit); redis.call('rpush', KEYS[2], unit)
end
local unit = redis.call('lpop', KEYS[2])
if not unit then
  if tonumber(redis.call('get', KEYS[1]) or '0') >= tonumber(ARGV[3]) then return {0, #expired} end
  unit = redis.call('incr', KEYS[1])
end
redis.call('zadd', KEYS[3], tonumber(ARGV[1]) + tonumber(ARGV[2]), unit)
redis.call('hset', KEYS[4], unit, ARGV[4])
return {tonumber(unit), #expired}
"""
# Consume a live hold of this owner before the PostgreSQL write: the unit leaves circulation, so it can
# neither expire back to the free list nor be held again while the confirm writes it.
CONSUME = """
local expiry = tonumber(redis.call('zscore', KEYS[1], ARGV[1]) or '0')
if redis.call('hget', KEYS[2], ARGV[1]) == ARGV[2] and expiry > tonumber(ARGV[3]) then
  redis.call('zrem', KEYS[1], ARGV[1]); redis.call('hdel', KEYS[2], ARGV[1]); return 1
end
return 0
"""


class Refused(Exception):
    """A claim answered no (409): sold_out, gave_up (retries or lock wait exhausted), stale (fenced off),
    expired (the hold was gone)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


SOLD_OUT = Refused("sold_out", "sold out")


@dataclass
class Seat:
    event: int
    seat: int
    capacity: int

    def key(self, kind: str) -> str:
        return f"{MODULE}:{self.event}:{self.seat}:{kind}"


class Strategy:
    """The common parts: the pool, the variant's metric children, the shared write."""

    name = ""

    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.conflicts, self.retries = CONFLICTS.labels(MODULE, self.name), RETRIES.labels(MODULE, self.name)
        self.lock_wait, self.transaction = LOCK_WAIT.labels(MODULE, self.name), TRANSACTION.labels(MODULE, self.name)

    def params(self, seat: Seat, user: str, request_id: str, **extra) -> dict:
        return {"event": seat.event, "seat": seat.seat, "user": user, "request": request_id, "variant": self.name,
                **extra}

    async def write(self, conn, params: dict, guard: str = "") -> int | None:
        row = await (await conn.execute(WRITE.format(guard=guard), params)).fetchone()
        return None if row is None else row[0]


class Naive(Strategy):
    """Read, check, write, in three autocommit statements: two readers of the same count both sell it."""

    name = "naive"

    async def claim(self, seat: Seat, user: str, request_id: str) -> int:
        params = self.params(seat, user, request_id)
        async with self.pg.pool.connection() as conn:
            sold, capacity, _ = await (await conn.execute(SELECT, params)).fetchone()
            if sold >= capacity:
                raise SOLD_OUT
            unit = sold + 1
            await conn.execute("UPDATE contention_seats SET sold = %(unit)s WHERE event_id = %(event)s "
                               "AND seat = %(seat)s", {**params, "unit": unit})
            await conn.execute(INSERT, {**params, "unit": unit})
        return unit


class Pessimistic(Strategy):
    name = "pessimistic"

    async def claim(self, seat: Seat, user: str, request_id: str) -> int:
        params = self.params(seat, user, request_id)
        async with self.pg.pool.connection() as conn:
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM contention_seats WHERE event_id = %(event)s AND seat = %(seat)s "
                                   "FOR UPDATE", params)
                self.lock_wait.observe(time.perf_counter() - started)
                unit = await self.write(conn, params)
            self.transaction.observe(time.perf_counter() - started)
        if unit is None:
            raise SOLD_OUT
        return unit


class Optimistic(Strategy):
    """Read the version; write only if it is unchanged; else back off (full jitter) and try again."""

    name = "optimistic"

    def __init__(self, pg: Postgres, max_retries: int, backoff_ms: float, backoff_cap_ms: float) -> None:
        super().__init__(pg)
        self.max_retries, self.backoff_s, self.cap_s = max_retries, backoff_ms / 1000, backoff_cap_ms / 1000

    async def claim(self, seat: Seat, user: str, request_id: str) -> int:
        params = self.params(seat, user, request_id)
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries.inc()
                await asyncio.sleep(random.uniform(0, min(self.cap_s, self.backoff_s * 2 ** attempt)))
            async with self.pg.pool.connection() as conn:
                sold, capacity, version = await (await conn.execute(SELECT, params)).fetchone()
                if sold >= capacity:
                    raise SOLD_OUT
                started = time.perf_counter()
                unit = await self.write(conn, {**params, "version": version}, "AND version = %(version)s")
                self.transaction.observe(time.perf_counter() - started)
            if unit is not None:
                return unit
            self.conflicts.inc()
        raise Refused("gave_up", f"{self.max_retries} retries exhausted: the seat kept changing under us")


class Atomic(Strategy):
    name = "atomic"

    async def claim(self, seat: Seat, user: str, request_id: str) -> int:
        params = self.params(seat, user, request_id)
        async with self.pg.pool.connection() as conn:
            started = time.perf_counter()
            unit = await self.write(conn, params)
            self.transaction.observe(time.perf_counter() - started)
        if unit is None:
            raise SOLD_OUT
        return unit


class Pauser:
    """Test and fault scenario only (the target's knobs): every `every`-th lock holder sleeps `pause_s` inside
    its critical section, `count` times (None: no limit): a GC pause or a VM stall, on demand."""

    def __init__(self) -> None:
        self.every, self.pause_s, self.count, self.calls = 0, 0.0, None, 0

    def arm(self, every: int, pause_s: float, count: int | None = None) -> None:
        self.every, self.pause_s, self.count, self.calls = every, pause_s, count, 0

    async def maybe_pause(self) -> None:
        if not self.every or self.count == 0:
            return
        self.calls += 1
        if self.calls % self.every == 0:
            if self.count is not None:
                self.count -= 1
            await asyncio.sleep(self.pause_s)


class RedisLock(Strategy):
    """A lease per seat in Redis; the fencing token (INCR at acquisition) must exceed the row's last one."""

    name = "redis_lock"

    def __init__(self, pg: Postgres, redis: Redis, ttl_ms: int, wait_ms: int) -> None:
        super().__init__(pg)
        self.redis, self.ttl_ms, self.wait_s, self.pauser = redis, ttl_ms, wait_ms / 1000, Pauser()
        self.acquire, self.release = redis.client.register_script(ACQUIRE), redis.client.register_script(RELEASE)
        self.stale = STALE.labels(MODULE, self.name)

    async def lock(self, seat: Seat, token: str) -> int:
        started = time.perf_counter()
        while not (fence := await self.acquire(keys=[seat.key("lock"), seat.key("fence")], args=[token, self.ttl_ms])):
            self.conflicts.inc()
            if time.perf_counter() - started > self.wait_s:
                raise Refused("gave_up", f"the seat's lock stayed taken for {self.wait_s:g} s")
            await asyncio.sleep(random.uniform(0.0005, 0.002))
        self.lock_wait.observe(time.perf_counter() - started)
        return int(fence)

    async def claim(self, seat: Seat, user: str, request_id: str) -> int:
        token = secrets.token_hex(8)
        fence = await self.lock(seat, token)
        try:
            return await self.fenced_write(seat, self.params(seat, user, request_id, fence=fence))
        finally:
            try:
                await self.release(keys=[seat.key("lock")], args=[token])
            except Exception:  # the lease expires by itself; a committed sale is never answered with an error
                pass

    async def fenced_write(self, seat: Seat, params: dict) -> int:
        async with self.pg.pool.connection() as conn:
            started = time.perf_counter()
            sold, capacity, _ = await (await conn.execute(SELECT, params)).fetchone()
            await self.pauser.maybe_pause()
            if sold >= capacity:
                raise SOLD_OUT
            unit = sold + 1
            async with conn.transaction():
                updated = await conn.execute(
                    "UPDATE contention_seats SET sold = %(unit)s, fence = %(fence)s WHERE event_id = %(event)s "
                    "AND seat = %(seat)s AND fence < %(fence)s", {**params, "unit": unit})
                if updated.rowcount == 0:
                    self.stale.inc()
                    raise Refused("stale", f"fencing token {params['fence']} is stale: the lock expired and a later "
                                           "holder wrote; nothing was written")
                await conn.execute(INSERT, {**params, "unit": unit})
            self.transaction.observe(time.perf_counter() - started)
        return unit


class RedisHold(Strategy):
    """Claim = an atomic hold in Redis with a TTL; confirm = the sale in PostgreSQL."""

    name = "redis_hold"

    def __init__(self, pg: Postgres, redis: Redis, ttl_ms: int) -> None:
        super().__init__(pg)
        self.redis, self.ttl_ms = redis, ttl_ms
        self.hold, self.consume = redis.client.register_script(HOLD), redis.client.register_script(CONSUME)
        self.expired = HOLDS_EXPIRED.labels(MODULE, self.name)

    def keys(self, seat: Seat) -> list[str]:
        return [seat.key(k) for k in ("next", "free", "holds", "holder")]

    async def claim(self, seat: Seat, user: str, request_id: str) -> int:
        unit, expired = await self.hold(keys=self.keys(seat),
                                        args=[int(time.time() * 1000), self.ttl_ms, seat.capacity, user])
        self.expired.inc(expired)
        if not unit:
            raise SOLD_OUT
        return int(unit)

    async def confirm(self, seat: Seat, unit: int, user: str, request_id: str) -> int:
        keys = self.keys(seat)
        if not await self.consume(keys=keys[2:], args=[unit, user, int(time.time() * 1000)]):
            raise Refused("expired", f"no live hold of seat {seat.seat} unit {unit} for this user: it expired or "
                                     "was never taken")
        params = self.params(seat, user, request_id, unit=unit)
        try:
            async with self.pg.pool.connection() as conn:
                started = time.perf_counter()
                async with conn.transaction():
                    counted = await conn.execute("UPDATE contention_seats SET sold = sold + 1, version = version + 1 "
                                                 "WHERE event_id = %(event)s AND seat = %(seat)s AND sold < capacity",
                                                 params)
                    if counted.rowcount == 0:
                        raise SOLD_OUT
                    await conn.execute(INSERT, params)
                self.transaction.observe(time.perf_counter() - started)
        except BaseException:
            try:  # not sold: the unit goes back to the free list, as an expired hold would
                await self.redis.client.rpush(keys[1], unit)
            except Exception:
                pass  # lost to circulation: never sold twice, one unit unsold at worst
            raise
        return unit
