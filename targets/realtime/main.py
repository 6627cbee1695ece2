"""Real-time Updates: messages from the publisher reach subscribers by push (SSE, WebSocket) or by
polling (long, short). All four read the same hub (hub.py): one Redis pub/sub
subscription per process, so any number of target processes can serve connections.

  GET /sse/events?channel=c            text/event-stream; `id:` is the sequence, so a client coming back
                                       with Last-Event-ID (or ?after=) gets everything after it first
  WS  /websocket/ws?channel=c          one text frame per message from the moment it connects; no resume
  GET /long_poll/messages?channel=c&after=s&timeout_s=t
                                       held until a message after s exists (or t seconds): {"last", "messages"}
  GET /short_poll/messages?channel=c&after=s
                                       at once, what came after s; without `after`, only the head
  GET /<variant>/stats                 the variant's open connections and delivered messages

A message is the publisher's JSON, unchanged: {"seq", "ts", "channel", "p"}. A missing `after`
starts at the channel's head (what is published from now on). On SIGTERM the streams end and held polls
answer within a second, so a restart takes no longer than that; clients resume from their last sequence.

Settings: HARNESS_REALTIME_* (settings.py, the spec's class; the target reads `channels`). Metrics: metrics.py.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations, which name a
# per-app type (the channel range), when each handler is defined.
import asyncio
from typing import Annotated

from fastapi import Header, Query, WebSocket
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from targets.common import TargetSettings, create_app, error_responses
from targets.realtime.hub import Hub, Item
from targets.realtime.metrics import BYTES, CONNECTIONS, DELIVERED, MODULE, REQUESTS, register_collector
from targets.realtime.settings import Settings

VARIANTS = ("sse", "websocket", "long_poll", "short_poll")
SEQ_MAX = 2**62


class Page(BaseModel):
    last: int = Field(description="the sequence to ask after next time")
    messages: list[dict]


class Stats(BaseModel):
    connections: float
    delivered: float


class Meter:
    """One variant's counters, bound once."""

    def __init__(self, variant: str) -> None:
        self.open = CONNECTIONS.labels(MODULE, variant)
        self.delivered, self.bytes = DELIVERED.labels(MODULE, variant), BYTES.labels(MODULE, variant)
        self.requests = REQUESTS.labels(MODULE, variant)

    def sent(self, items: list[Item] | Item, size: int) -> None:
        self.delivered.inc(len(items) if isinstance(items, list) else 1)
        self.bytes.inc(size)

    def stats(self) -> Stats:
        return Stats(connections=self.open._value.get(), delivered=self.delivered._value.get())


def page(items: list[Item], last: int) -> Response:
    body = b'{"last":%d,"messages":[%s]}' % (items[-1].seq if items else last, b",".join(i.raw for i in items))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


class Endpoints:
    def __init__(self, hub: Hub, channels: int) -> None:
        self.hub, self.meters = hub, {v: Meter(v) for v in VARIANTS}
        self.channel_type = Annotated[int, Query(ge=0, lt=channels, description="0..HARNESS_REALTIME_CHANNELS-1")]

    async def live(self, queue: asyncio.Queue, channel: int, after: int | None):
        """History after `after` (the queue already subscribed, so nothing falls between), then live,
        each sequence once; ends when the hub cuts the queue (slow client, shutdown)."""
        sent = -1
        if after is not None:
            for item in await self.hub.history(channel, after):
                sent = item.seq
                yield item
        while True:
            item = await queue.get()
            if item is None:
                return
            if item.seq > sent:
                yield item

    def sse(self):
        Channel = self.channel_type  # noqa: N806  (a type)
        meter = self.meters["sse"]

        async def events(channel: Channel = 0,
                         after: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None,
                         last_event_id: Annotated[int | None, Header(ge=0, le=SEQ_MAX)] = None):
            meter.requests.inc()
            resume = last_event_id if last_event_id is not None else after
            queue = self.hub.subscribe(channel)
            meter.open.inc()

            async def frames():
                try:
                    async for item in self.live(queue, channel, resume):
                        frame = item.sse
                        meter.sent(item, len(frame))
                        yield frame
                finally:  # also when the client goes away (the response cancels the generator)
                    self.hub.unsubscribe(channel, queue)
                    meter.open.dec()

            return EventSourceResponse(frames(), ping=15, sep="\n", send_timeout=None)

        return events

    def websocket(self):
        Channel = self.channel_type  # noqa: N806  (a type)
        meter = self.meters["websocket"]

        async def ws(websocket: WebSocket, channel: Channel = 0):
            meter.requests.inc()
            await websocket.accept()
            queue = self.hub.subscribe(channel)
            meter.open.inc()

            async def until_closed():  # a close frame unblocks the sender at once, even with no traffic
                try:
                    while (await websocket.receive())["type"] != "websocket.disconnect":
                        pass
                finally:
                    queue.put_nowait(None)

            reader = asyncio.create_task(until_closed())
            try:
                async for item in self.live(queue, channel, None):
                    await websocket.send_text(item.raw.decode())
                    meter.sent(item, len(item.raw))
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # the client left mid-send
            finally:
                self.hub.unsubscribe(channel, queue)
                meter.open.dec()
                reader.cancel()

        return ws

    def long_poll(self):
        Channel = self.channel_type  # noqa: N806  (a type)
        meter = self.meters["long_poll"]

        async def messages(channel: Channel = 0, after: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None,
                           timeout_s: Annotated[float, Query(gt=0, le=55)] = 25.0) -> Response:
            meter.requests.inc()
            meter.open.inc()
            try:
                after = await self.hub.head(channel) if after is None else after
                items = await self.hub.history(channel, after)
                if not items and await self.hub.wait_newer(channel, after, timeout_s):
                    items = await self.hub.history(channel, after)
                response = page(items, after)
                meter.sent(items, len(response.body))
                return response
            finally:
                meter.open.dec()

        return messages

    def short_poll(self):
        Channel = self.channel_type  # noqa: N806  (a type)
        meter = self.meters["short_poll"]

        async def messages(channel: Channel = 0,
                           after: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None) -> Response:
            meter.requests.inc()
            items = [] if after is None else await self.hub.history(channel, after)
            response = page(items, await self.hub.head(channel) if after is None else after)
            meter.sent(items, len(response.body))
            return response

        return messages

    def routes(self) -> list:
        polls = {"response_model": Page, "responses": error_responses(422)}
        routes: list = [
            # Held responses stay out of the OpenAPI document: a generic fuzzer would wait on them forever
            # (tests/integration/test_realtime_target.py sends them bad input instead).
            APIRoute("/sse/events", self.sse(), methods=["GET"], response_class=EventSourceResponse,
                     responses=error_responses(422), include_in_schema=False),
            APIWebSocketRoute("/websocket/ws", self.websocket()),
            APIRoute("/long_poll/messages", self.long_poll(), methods=["GET"], include_in_schema=False, **polls),
            APIRoute("/short_poll/messages", self.short_poll(), methods=["GET"], **polls),
        ]
        for variant, meter in self.meters.items():
            routes.append(APIRoute(f"/{variant}/stats", meter.stats, methods=["GET"], response_model=Stats))
        return routes


def build(settings: TargetSettings | None = None, realtime: Settings | None = None):
    """The app; `settings` and `realtime` replace the env (tests build their own app this way)."""
    settings, realtime = settings or TargetSettings(), realtime or Settings()
    hub = Hub(settings.redis_url, VARIANTS)
    register_collector(VARIANTS)
    return create_app(MODULE, VARIANTS, routes=Endpoints(hub, realtime.channels).routes(), resources=[hub],
                      settings=settings)


app = build()
