"""The realtime hub against the real Redis: what a client resuming right after a target restart gets.

A restarted target has seen no message yet. A client that reconnects at once with Last-Event-ID
(or `?after=`) must still get everything after it, from the Redis stream, not only what is
published from then on. Before the fix the hub answered such a client with nothing until its first
live message, and a prompt SSE client lost every message published while the target was down.
"""

import asyncio
import json

import pytest
import redis

from harness.settings import get_settings
from targets.realtime.hub import Hub, channel_keys

pytestmark = pytest.mark.integration
CHANNEL = 997  # no publisher uses it


@pytest.fixture
def stream(stack):
    client = redis.Redis.from_url(get_settings().redis_url)
    _, name, _ = channel_keys(CHANNEL)
    client.delete(name)
    for seq in range(1, 11):
        client.xadd(name, {"m": json.dumps({"seq": seq, "channel": CHANNEL}).encode()}, id=f"{seq}-0")
    yield name
    client.delete(name)
    client.close()


def resumed(after: int) -> list[int]:
    async def ask() -> list[int]:
        hub = Hub(get_settings().redis_url, ())  # a fresh process: it has seen nothing yet
        try:
            return [item.seq for item in await hub.history(CHANNEL, after)]
        finally:
            await hub.redis.aclose()

    return asyncio.run(ask())


def test_a_fresh_hub_resumes_from_the_stream(stream):
    assert resumed(4) == [5, 6, 7, 8, 9, 10]


def test_a_fresh_hub_has_nothing_after_the_last_message(stream):
    assert resumed(10) == []
