"""Users for pushed and polled message streams: Server-Sent Events, WebSocket, long and short polling.

Each user holds one subscription (one connection for SSE and WebSocket), parses every message and
fires one Locust request event per message, named `message`, whose response time is the delivery
latency: receive time minus the publish time the message carries (same machine, same clock), and
whose start time is the publish time (so the warm-up cut applies to when it was published). The
harness plugin's recorder listens to those events: exact histograms and the exporter see them.
Connection setup is its own request, `connect`; a stream that drops is a failed `disconnect`.

A message is JSON with a sequence number and a publish timestamp (`seq_field`, `time_field`; override
`decode` for anything else). Every user checks its own sequence (`Sequence`): a jump forward is
counted as lost messages, a repeat or a step back as duplicates. With the harness plugin loaded the
counts are tallied (`messages_lost`, `messages_duplicated`, `disconnects`, `reconnects`), summed over
workers. `resume`: reconnect asking for what came after the last sequence seen (SSE sends
Last-Event-ID; the others add `?after=`); without it a reconnect starts from the live edge.

    class Subscriber(SSEUser):
        path = "/events?channel=0"

Gevent-friendly clients only: geventhttpclient (shipped with Locust) read line by line for SSE
(FastHttpSession's iter_lines buffers 1 KiB and delays small events), websocket-client for WebSocket.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import gevent
import websocket  # websocket-client: blocking sockets, which gevent's monkey patching makes cooperative
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL
from locust import User, constant, task

__all__ = ["LongPollUser", "PushUser", "Sequence", "SSEUser", "ShortPollUser", "WebSocketUser"]
MESSAGE, CONNECT, DISCONNECT = "message", "connect", "disconnect"


class Sequence:
    """One subscriber's sequence check: in order, each number once; anything else is counted."""

    __slots__ = ("first", "last", "received", "lost", "duplicated")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.received = self.lost = self.duplicated = 0

    def observe(self, seq: int) -> int:
        """Record `seq`; returns how many were skipped before it (0 in order), or -1 for a duplicate."""
        if self.last is not None and seq <= self.last:
            self.duplicated += 1
            return -1
        skipped = 0 if self.last is None else seq - self.last - 1
        if self.first is None:
            self.first = seq
        self.last, self.received, self.lost = seq, self.received + 1, self.lost + skipped
        return skipped


class PushUser(User):
    """Shared bookkeeping; subclasses implement `subscribe()` (one connection or poll loop)."""

    abstract = True
    # Between reconnects only: the first retry after 50 ms, doubling up to 0.4 s while the server refuses,
    # so a subscriber is back within 0.4 s of the server accepting again (a prompt client: what it
    # missed must come from the resume protocol, not from having waited for the server to catch up).
    reconnect_first_s, reconnect_max_s = 0.05, 0.4
    path = "/"
    query: dict = {}
    resume = True
    seq_field, time_field = "seq", "ts"
    kind = "PUSH"  # the request type in Locust's stats

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.sequence = Sequence()
        self.connections = 0
        self.reconnect_s = self.reconnect_first_s
        self.refused_since: float | None = None  # the first refused attempt of the current outage

    def wait_time(self) -> float:
        wait, self.reconnect_s = self.reconnect_s, min(self.reconnect_max_s, self.reconnect_s * 2)
        return wait

    def decode(self, raw: bytes | str | dict) -> tuple[int, float]:
        message = raw if isinstance(raw, dict) else json.loads(raw)
        return int(message[self.seq_field]), float(message[self.time_field])

    def url_query(self, extra: dict | None = None) -> str:
        params = {**self.query, **(extra or {})}
        return f"{self.path}?{urlencode(params)}" if params else self.path

    def after(self) -> dict:
        return {"after": self.sequence.last} if self.resume and self.sequence.last is not None else {}

    def on_message(self, raw, size: int) -> None:
        now = time.time()
        seq, published = self.decode(raw)
        skipped = self.sequence.observe(seq)
        if skipped:
            self.tally("messages_lost" if skipped > 0 else "messages_duplicated", max(1, skipped))
        if skipped < 0:
            return
        self.fire(MESSAGE, (now - published) * 1000, published, size=size)

    def fire(self, name: str, ms: float, start: float, exception: BaseException | None = None,
             size: int = 0) -> None:
        self.environment.events.request.fire(request_type=self.kind, name=name, response_time=max(0.0, ms),
                                             start_time=start, response_length=size, exception=exception,
                                             context={})

    def tally(self, name: str, amount: int = 1) -> None:
        plugin = getattr(self.environment, "harness", None)
        if plugin is not None:
            plugin.tally(name, amount)

    def connected(self, started: float, exception: BaseException | None = None) -> None:
        """A connection attempt's outcome. While the server refuses, only the first refused attempt of the
        outage is a failed `connect` (the prompt retries after it are one outage, tallied as
        `connect_retries`); the successful one after them is timed from that first attempt."""
        if exception is not None:
            if self.refused_since is None:
                self.refused_since = started
                self.fire(CONNECT, (time.time() - started) * 1000, started, exception)
            else:
                self.tally("connect_retries")
            return
        since, self.refused_since = self.refused_since or started, None
        self.fire(CONNECT, (time.time() - since) * 1000, since)
        self.reconnect_s = self.reconnect_first_s
        self.connections += 1
        if self.connections > 1:
            self.tally("reconnects")

    def dropped(self, exception: BaseException, fire: bool = True) -> None:
        self.tally("disconnects")
        if fire:
            self.fire(DISCONNECT, 0.0, time.time(), exception)

    @task
    def listen(self) -> None:
        self.subscribe()

    def subscribe(self) -> None:
        raise NotImplementedError


class StreamClosed(ConnectionError):
    """The server ended a stream the client did not close."""


class SSEUser(PushUser):
    """text/event-stream over one HTTP connection; `data:` lines make a message, a blank line ends it."""

    abstract = True
    kind = "SSE"
    read_timeout_s = 35.0  # above the server's keep-alive ping interval (15 s)

    def subscribe(self) -> None:
        url = URL(self.host)
        headers = {"Accept": "text/event-stream"}
        if self.resume and self.sequence.last is not None:
            headers["Last-Event-ID"] = str(self.sequence.last)
        started = time.time()
        client = HTTPClient(url.host, url.port, connection_timeout=10, network_timeout=self.read_timeout_s,
                            concurrency=1)
        try:
            response = client.get(self.url_query(), headers=headers)
            if response.status_code != 200:
                raise ConnectionError(f"status {response.status_code}")
        except Exception as exc:
            client.close()
            return self.connected(started, exc)
        self.connected(started)
        try:
            self.read_events(response)
            raise StreamClosed("the server ended the stream")
        except Exception as exc:  # a reset, a timeout or the end: counted, then reconnect
            self.dropped(exc)
        finally:
            response.release()
            client.close()

    def read_events(self, response) -> None:
        data: list[bytes] = []
        while True:
            line = response.readline(b"\n")  # returns as soon as a line is in: no 1 KiB buffering
            if not line:
                return
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    raw = b"\n".join(data)
                    self.on_message(raw, len(raw))
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))


class WebSocketUser(PushUser):
    """One WebSocket; each text or binary frame is a message. `resume` adds ?after= on a reconnect."""

    abstract = True
    kind = "WS"
    read_timeout_s = 35.0

    def subscribe(self) -> None:
        url = self.host.replace("http", "ws", 1) + self.url_query(self.after())
        started = time.time()
        try:
            ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True)
        except Exception as exc:
            return self.connected(started, exc)
        self.connected(started)
        ws.settimeout(self.read_timeout_s)
        try:
            while True:
                frame = ws.recv()
                if not frame:  # a close frame: websocket-client returns ""
                    raise StreamClosed("the server closed the WebSocket")
                self.on_message(frame, len(frame))
        except Exception as exc:
            self.dropped(exc)
        finally:
            ws.close()


class _PollUser(PushUser):
    """Asks for what came after the last sequence; the answer is {"last": s, "messages": [...]}. The
    poll requests themselves fire no success event (the messages are what is measured, and Locust's
    request rate stays the message rate); a failed poll is a failed `poll` request."""

    abstract = True
    read_timeout_s = 35.0  # above the longest hold a long poll asks for
    retry_s = 1.0

    def on_start(self) -> None:
        url = URL(self.host)
        self.http = HTTPClient(url.host, url.port, connection_timeout=10, network_timeout=self.read_timeout_s,
                               concurrency=1)

    def on_stop(self) -> None:
        self.http.close()

    def poll(self, extra: dict | None = None) -> None:
        started = time.time()
        try:
            response = self.http.get(self.url_query({**self.after(), **(extra or {})}))
            try:
                body = response.read()
            finally:
                response.release()
            if response.status_code != 200:
                raise ConnectionError(f"status {response.status_code}")
            body = json.loads(body)
            messages = body["messages"]
        except Exception as exc:  # refused, reset, timed out, or not our JSON
            self.fire("poll", (time.time() - started) * 1000, started, exc)
            self.dropped(exc, fire=False)
            gevent.sleep(self.retry_s)  # a server that refuses at once must not be hammered
            return
        if self.connections == 0:
            self.connected(started)
        for message in messages:
            self.on_message(message, 0)
        if self.sequence.last is None and isinstance(body.get("last"), int):
            self.sequence.last = body["last"]  # the live edge: what comes after it is owed to us


class LongPollUser(_PollUser):
    """Each request is held by the server until a message or its timeout; the next follows at once."""

    abstract = True
    kind = "LP"
    wait_time = constant(0)

    def subscribe(self) -> None:
        self.poll()


class ShortPollUser(_PollUser):
    """One request every `interval_s` (the wait time), answered at once."""

    abstract = True
    kind = "POLL"
    interval_s = 1.0

    def wait_time(self) -> float:
        return self.interval_s

    def subscribe(self) -> None:
        self.poll()
