"""Real-time Updates' hub: ONE Redis pub/sub subscription per target process, fanned out to every
client's asyncio queue, with a ring buffer per channel (and the channel's Redis Stream behind it) so a
client that comes back with the last sequence it saw gets what it missed.

Keys, per channel c (the publisher writes them, publisher.py):
  realtime:pub:<c>      the pub/sub channel; a message is JSON {"seq", "ts", "channel", "p"}
  realtime:stream:<c>   the Redis Stream; entry id "<seq>-0", field m = the message
  realtime:seq:<c>      the channel's last sequence (INCR)

A slow client whose queue passes QUEUE_MAX is cut (its queue gets None): it resumes with its last
sequence, like any dropped client. Redis gone: the hub retries every second and, once subscribed
again, fills the gap from the stream before delivering anything newer.

Metrics: metrics.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque

import redis.asyncio as aioredis

PATTERN = "realtime:pub:*"
RING, QUEUE_MAX, HISTORY_MAX = 4096, 2000, 5000
log = logging.getLogger("realtime.hub")

def channel_keys(channel: int) -> tuple[str, str, str]:
    return f"realtime:pub:{channel}", f"realtime:stream:{channel}", f"realtime:seq:{channel}"


class Item:
    """One message, encoded once and shared by every client (SSE frame built on first use)."""

    __slots__ = ("seq", "raw", "_sse")

    def __init__(self, seq: int, raw: bytes) -> None:
        self.seq, self.raw, self._sse = seq, raw, None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = b"id: %d\ndata: %s\n\n" % (self.seq, self.raw)
        return self._sse


class Channel:
    def __init__(self, number: int) -> None:
        self.number, self.last_seq = number, 0
        self.ring: deque[Item] = deque(maxlen=RING)
        self.queues: set[asyncio.Queue] = set()
        self.newer = asyncio.Event()  # set and replaced on every message: wakes held long polls


class Hub:
    """A `Resource` (targets/resources.py): open() starts the subscription task, check() pings Redis."""

    name, optional = "realtime_hub", False

    def __init__(self, url: str, variants: tuple[str, ...]) -> None:
        self.redis = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        self.channels: dict[int, Channel] = {}
        self.task: asyncio.Task | None = None
        self.closing = asyncio.Event()
        self.subscribed = False

    def channel(self, number: int) -> Channel:
        ch = self.channels.get(number)
        if ch is None:
            ch = self.channels[number] = Channel(number)
        return ch

    async def open(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def check(self) -> None:
        await self.redis.ping()
        if self.task is not None and self.task.done():
            raise RuntimeError("the subscription task ended")

    async def close(self) -> None:
        self.closing.set()
        for ch in self.channels.values():
            for queue in ch.queues:
                queue.put_nowait(None)
            ch.newer.set()
        if self.task is not None:
            self.task.cancel()
        await self.redis.aclose()

    # --- the subscription ---------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.psubscribe(PATTERN)
                self.subscribed = True
                for ch in list(self.channels.values()):  # heal what was missed while unsubscribed
                    await self.backfill(ch)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "pmessage":
                        await self.receive(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or a bad message: retry; the stream heals the gap
                self.subscribed = False
                log.warning("subscription lost: %r; retrying in 1 s", exc)
                await asyncio.sleep(1.0)

    async def receive(self, channel_name: bytes, raw: bytes) -> None:
        number, seq = int(channel_name.rsplit(b":", 1)[1]), int(json.loads(raw)["seq"])
        ch = self.channel(number)
        if seq <= ch.last_seq:
            return
        if ch.last_seq and seq > ch.last_seq + 1:
            await self.backfill(ch, upto=seq - 1)
        self.deliver(ch, Item(seq, raw))

    async def backfill(self, ch: Channel, upto: int | None = None) -> None:
        _, stream, _ = channel_keys(ch.number)
        if not ch.last_seq:  # first sight of the channel: the ring starts with the stream's tail
            entries = list(reversed(await self.redis.xrevrange(stream, "+", "-", count=RING)))
        else:
            entries = await self.redis.xrange(stream, f"({ch.last_seq}-0", f"{upto}-0" if upto else "+")
        fan = bool(ch.last_seq)
        for entry_id, fields in entries:
            seq = int(entry_id.split(b"-")[0])
            if seq > ch.last_seq:
                self.deliver(ch, Item(seq, fields[b"m"]), fan=fan)

    def deliver(self, ch: Channel, item: Item, fan: bool = True) -> None:
        ch.last_seq = item.seq
        ch.ring.append(item)
        if not fan:
            return
        for queue in tuple(ch.queues):
            if queue.qsize() >= QUEUE_MAX:  # too slow: cut it; it resumes like any dropped client
                ch.queues.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(item)
        ch.newer.set()
        ch.newer = asyncio.Event()

    # --- the clients' side --------------------------------------------------------------------
    async def head(self, number: int) -> int:
        """The channel's last sequence; asks Redis when this process has not seen the channel yet."""
        ch = self.channel(number)
        if not ch.last_seq:
            await self.backfill(ch)
        return ch.last_seq

    async def history(self, number: int, after: int, limit: int = HISTORY_MAX) -> list[Item]:
        ch = self.channel(number)
        if not ch.last_seq:  # not seen since this process started (a restart): the stream knows
            await self.backfill(ch)
        if after >= ch.last_seq:
            return []
        if ch.ring and ch.ring[0].seq <= after + 1:
            return [item for item in ch.ring if item.seq > after][:limit]
        _, stream, _ = channel_keys(number)
        entries = await self.redis.xrange(stream, f"({after}-0", "+", count=limit)
        return [Item(int(entry_id.split(b"-")[0]), fields[b"m"]) for entry_id, fields in entries]

    async def wait_newer(self, number: int, after: int, timeout_s: float) -> bool:
        ch, deadline = self.channel(number), time.monotonic() + timeout_s
        while ch.last_seq <= after and not self.closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:  # in steps, so a shutting-down server answers held polls within a second
                await asyncio.wait_for(ch.newer.wait(), min(left, 1.0))
            except TimeoutError:
                if shutting_down():
                    return False
        return ch.last_seq > after

    def subscribe(self, number: int) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.channel(number).queues.add(queue)
        return queue

    def unsubscribe(self, number: int, queue: asyncio.Queue) -> None:
        self.channel(number).queues.discard(queue)


def shutting_down() -> bool:
    from sse_starlette.sse import AppStatus  # set when uvicorn receives SIGTERM

    return AppStatus.should_exit
