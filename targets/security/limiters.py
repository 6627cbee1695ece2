"""Rate limiting per client key, enforced in Redis atomically, three ways.

  fixed_window    `limits`' FixedWindowRateLimiter: INCR + EXPIRE in one Lua call; the window opens at the key's
                  first hit, so a client aligned on its edge gets up to 2x the limit in a trailing window
  sliding_window  `limits`' SlidingWindowCounterRateLimiter: the previous window's count weighted by the share
                  of it still inside the trailing window, plus the current count (Cloudflare's approximation)
  token_bucket    a small Lua script on Redis's clock (TIME): at most `limit` tokens, refilled at limit/window per
                  second; a request takes one or is refused with the seconds until the next token

`limits` has no token bucket or GCRA and redis-cell is on no registry, hence the script. Every decision is
one round trip to Redis. What happens when Redis is down is a setting, never a silent multiplication of the
limit: `closed` refuses (503), `open` admits and says so (header and counter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local per_us = tonumber(ARGV[2]) / 1000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_us)
local admitted = 0
if tokens >= 1 then
  tokens = tokens - 1
  admitted = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_us / 1000) + 1000)
local wait_us = 0
if admitted == 0 then wait_us = math.ceil((1 - tokens) / per_us) end
return {admitted, wait_us}
"""


@dataclass(frozen=True)
class Decision:
    admitted: bool
    retry_after_s: float = 0.0


class WindowLimiter:
    """`limits`' fixed or sliding window counter in Redis (its own Lua scripts)."""

    def __init__(self, kind: str, storage: RedisStorage, limit: int, window_s: int) -> None:
        strategy = {"fixed_window": FixedWindowRateLimiter, "sliding_window": SlidingWindowCounterRateLimiter}[kind]
        self.limiter, self.item = strategy(storage), RateLimitItemPerSecond(limit, window_s)
        self.namespace = kind

    async def hit(self, key: str) -> Decision:
        if await self.limiter.hit(self.item, self.namespace, key):
            return Decision(True)
        stats = await self.limiter.get_window_stats(self.item, self.namespace, key)
        return Decision(False, max(0.0, stats.reset_time - time.time()))


class TokenBucket:
    def __init__(self, redis: Redis, limit: int, window_s: int) -> None:
        self.script = redis.register_script(TOKEN_BUCKET)
        self.capacity, self.per_s = limit, limit / window_s

    async def hit(self, key: str) -> Decision:
        admitted, wait_us = await self.script(keys=[f"security:bucket:{key}"], args=[self.capacity, self.per_s])
        return Decision(bool(admitted), wait_us / 1e6)


def storage_for(redis_url: str) -> RedisStorage:
    """`limits`' async Redis storage on redis-py, with bounded timeouts; errors surface as they are."""
    return RedisStorage(f"async+{redis_url}", implementation="redispy", wrap_exceptions=True,
                        socket_timeout=1.0, socket_connect_timeout=0.5)
