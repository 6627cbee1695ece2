"""Real-time Updates' publisher (`python -m targets.realtime.publisher`): a process of the stack.

Every 1/rate seconds, for each channel, one Lua script (atomic, so sequence, stream and publish never
disagree) INCRs the channel's sequence, XADDs the message to its stream under id "<seq>-0" (capped
near STREAM_MAX entries) and PUBLISHes it. The message is JSON {"seq", "ts", "channel", "p"}: `ts` is
time.time() at publish, so a subscriber on this machine computes delivery latency with one clock.

Rate, payload size and channel count come from HARNESS_REALTIME_PUBLISH_RATE / _PAYLOAD_BYTES /
_CHANNELS (settings.py, the spec's class), unless the Redis hash `realtime:publisher` says otherwise
(a phase sets it: see locustfiles/realtime.py); it is read again twice a second. Redis gone: retry each second; the
sequence lives in Redis, so nothing is numbered twice.

Serves /healthz, /metrics (harness_realtime_published_total, metrics.py) and /config on
127.0.0.1:HARNESS_PROCESS_PORT (run alone: settings.PUBLISHER_PORT, the spec's port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import TargetSettings, metrics
from targets.realtime.hub import channel_keys
from targets.realtime.metrics import MODULE, PUBLISHED
from targets.realtime.settings import PUBLISHER_PORT, Settings

CONFIG_KEY = "realtime:publisher"
STREAM_MAX = 100_000
# The sequence never goes back: a Redis restarted without persistence has lost its counter, so it is
# raised past the last sequence this publisher sent (ARGV[5]); the history before is lost, and
# subscribers resuming from it see a gap, which they report as loss.
PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
if seq <= tonumber(ARGV[5]) then
  seq = tonumber(ARGV[5]) + 1
  redis.call('SET', KEYS[1], seq)
end
local msg = '{"seq":' .. seq .. ',"ts":' .. ARGV[1] .. ',"channel":' .. ARGV[2] .. ',"p":"' .. ARGV[3] .. '"}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'm', msg)
redis.call('PUBLISH', KEYS[3], msg)
return seq
"""
log = logging.getLogger("realtime.publisher")


def overrides(raw: dict, defaults: Settings) -> Settings:
    """The hash's fields over the defaults; a field that does not validate is ignored (and logged)."""
    values = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
              for k, v in raw.items()}
    try:
        return Settings(**{**defaults.model_dump(),
                           **{k: v for k, v in values.items() if k in Settings.model_fields}})
    except ValueError as exc:
        log.warning("ignoring %s: %s", CONFIG_KEY, exc)
        return defaults


class Publisher:
    def __init__(self, url: str, defaults: Settings) -> None:
        self.redis = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        self.script = self.redis.register_script(PUBLISH)
        self.defaults = self.config = defaults
        self.last_seq: dict[int, int] = {}

    async def refresh(self) -> None:
        self.config = overrides(await self.redis.hgetall(CONFIG_KEY), self.defaults)

    async def publish_all(self) -> None:
        payload, ts = "x" * self.config.payload_bytes, repr(time.time())
        for channel in range(self.config.channels):
            pub, stream, seq_key = channel_keys(channel)
            seq = await self.script(keys=[seq_key, stream, pub],
                                    args=[ts, channel, payload, STREAM_MAX, self.last_seq.get(channel, 0)])
            self.last_seq[channel] = int(seq)
            PUBLISHED.labels(MODULE, "all", str(channel)).inc()

    async def run(self) -> None:
        next_at, refreshed = time.monotonic(), 0.0
        while True:
            try:
                if time.monotonic() - refreshed > 0.5:
                    await self.refresh()
                    refreshed = time.monotonic()
                await self.publish_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: wait, and keep the schedule from bursting afterwards
                log.warning("publish failed: %r; retrying in 1 s", exc)
                await asyncio.sleep(1.0)
                next_at = time.monotonic()
                continue
            next_at += 1.0 / self.config.publish_rate
            delay = next_at - time.monotonic()
            if delay < -1.0:  # fell behind (a stall): skip ahead instead of a catch-up burst
                next_at, delay = time.monotonic(), 0.0
            await asyncio.sleep(max(0.0, delay))


def build(url: str | None = None, defaults: Settings | None = None) -> Starlette:
    publisher = Publisher(url or TargetSettings().redis_url, defaults or Settings())
    state: dict = {"task": None}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["task"] = asyncio.create_task(publisher.run())
        try:
            yield
        finally:
            state["task"].cancel()
            await asyncio.gather(state["task"], return_exceptions=True)
            await publisher.redis.aclose()

    async def healthz(request: Request) -> Response:
        task = state["task"]
        if task is None or task.done():
            return JSONResponse({"status": "dead" if task else "starting"}, 503)
        return JSONResponse({"status": "ok", "last_seq": publisher.last_seq})

    async def config(request: Request) -> Response:
        return JSONResponse({**publisher.config.model_dump(), "last_seq": publisher.last_seq})

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics), Route("/config", config)],
                     lifespan=lifespan)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    port = int(os.environ.get("HARNESS_PROCESS_PORT", PUBLISHER_PORT))
    host = os.environ.get("HARNESS_BIND", "127.0.0.1")
    uvicorn.run(build(), host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
