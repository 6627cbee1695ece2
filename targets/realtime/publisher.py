"""Real-time Updates' publisher (`python -m targets.realtime.publisher`): a service of the stack.

Every 1/rate seconds, for each channel, one Lua script (atomic, so sequence, stream and publish never
disagree) INCRs the channel's sequence, XADDs the message to its stream under id "<seq>-0" (capped
near STREAM_MAX entries) and PUBLISHes it. The message is JSON {"seq", "ts", "channel", "p"}: `ts` is
time.time() at publish, so a subscriber on this machine computes delivery latency with one clock.

Rate, payload size and channel count come from HARNESS_REALTIME_PUBLISH_RATE / _PAYLOAD_BYTES /
_CHANNELS (settings.py, the spec's class), unless a phase sets them as knobs (PUT /admin/knobs, admin
token: targets/knobs.py); a new rate takes effect from the next tick. Redis gone: retry each second;
the sequence lives in Redis, so nothing is numbered twice.

Serves /healthz, /metrics (harness_realtime_published_total, metrics.py), /config (the values in force
and the last sequence of each channel), /admin/knobs and /openapi.json on 127.0.0.1:HARNESS_PROCESS_PORT
(run alone: settings.PUBLISHER_PORT, the spec's port).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from targets.common import TargetSettings, create_app
from targets.knobs import KnobRoutes
from targets.realtime.hub import channel_keys
from targets.realtime.metrics import MODULE, PUBLISHED
from targets.realtime.settings import PUBLISHER_PORT, Settings

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


class Knobs(BaseModel):
    """What a scenario may turn for its phases; a knob left out (null) is the HARNESS_REALTIME_* setting."""

    model_config = ConfigDict(extra="forbid")

    publish_rate: float | None = Field(default=None, gt=0, le=1000, description="messages/s per channel")
    payload_bytes: int | None = Field(default=None, ge=0, le=65536)
    channels: int | None = Field(default=None, ge=1, le=1000, description="channels 0..n-1 are published")


class Config(Settings):
    last_seq: dict[int, int]


class Publisher:
    """The publishing loop, as a resource of the app: opened (started) and closed (cancelled) by its
    lifespan, and checked by /healthz."""

    name, optional = "publisher", False

    def __init__(self, url: str, defaults: Settings) -> None:
        self.redis = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        self.script = self.redis.register_script(PUBLISH)
        self.defaults = self.config = defaults
        self.last_seq: dict[int, int] = {}
        self.task: asyncio.Task | None = None

    def turn(self, knobs: Knobs) -> None:
        self.config = self.defaults.model_copy(update=knobs.model_dump(exclude_none=True))

    async def open(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def check(self) -> None:
        if self.task is None or self.task.done():
            raise RuntimeError("the publishing loop is not running")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.redis.aclose()

    async def publish_all(self) -> None:
        payload, ts = "x" * self.config.payload_bytes, repr(time.time())
        for channel in range(self.config.channels):
            pub, stream, seq_key = channel_keys(channel)
            seq = await self.script(keys=[seq_key, stream, pub],
                                    args=[ts, channel, payload, STREAM_MAX, self.last_seq.get(channel, 0)])
            self.last_seq[channel] = int(seq)
            PUBLISHED.labels(MODULE, "all", str(channel)).inc()

    async def run(self) -> None:
        next_at = time.monotonic()
        while True:
            try:
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


def build(settings: TargetSettings | None = None, defaults: Settings | None = None) -> FastAPI:
    """The app; `settings` and `defaults` replace the env (tests build their own app this way)."""
    settings = settings or TargetSettings()
    publisher = Publisher(settings.redis_url, defaults or Settings())

    async def config() -> Config:
        return Config(**publisher.config.model_dump(), last_seq=publisher.last_seq)

    routes = [APIRoute("/config", config, methods=["GET"], response_model=Config),
              *KnobRoutes(Knobs, publisher.turn).routes()]
    return create_app(MODULE, (), routes=routes, resources=[publisher], settings=settings)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    port = int(os.environ.get("HARNESS_PROCESS_PORT", PUBLISHER_PORT))
    host = os.environ.get("HARNESS_BIND", "127.0.0.1")
    uvicorn.run(build(), host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
