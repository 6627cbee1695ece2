"""Real-time Updates: subscribers receive a publisher's messages by SSE, WebSocket, long or short polling.

Run it as plain Locust (web UI, or add --headless -u 300 -t 60s):

    locust -f locustfiles/realtime.py --variant sse

The variants, scenarios and claims are the module's spec (`harness/modules/realtime.py`). Each user is
one subscriber of channel (user number mod the channels published), built on the generic users of
`harness/loadgen/push.py`: one request event `message` per delivered message, its time the delivery
latency; `connect` for connection setup; `disconnect` when a stream drops.

The publisher's rate, payload size and channel count are its knobs: the scenario's (`fanout`
publishes 1 message/s), set for each test by the harness's Locust plugin, else its
HARNESS_REALTIME_* settings; `--knob realtime_publisher.publish_rate=20` (or `.payload_bytes`,
`.channels`) overrides them:

    locust -f locustfiles/realtime.py --variant sse --knob realtime_publisher.publish_rate=20

More channels than the target's HARNESS_REALTIME_CHANNELS are refused by the target (422 on connect).

When the test stops, every subscriber's sequence is checked: messages skipped inside a connection's
sequence, plus those published on its channel before the stop (less a grace period for messages in
flight) that it never received, are lost; a repeat or a step back is a duplicate.
"""

from __future__ import annotations

import itertools
import json
import time

import redis
from locust import events
from locust.runners import WorkerRunner

from harness import loadgen
from harness.loadgen import push
from harness.modules.realtime import PUBLISHER, SPEC
from harness.settings import get_settings
from locustfiles.realtime_checks import check_sequences, unreceived_tail

SETTINGS = SPEC.settings()
# (channel, sequence, subscribed at, epoch s) of every subscriber in this process
SUBSCRIBERS: list[tuple[int, push.Sequence, float]] = []
_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("realtime")
    group.add_argument("--poll-interval", type=float, default=SETTINGS.poll_interval_s,
                       env_var="LOCUST_POLL_INTERVAL", help="short polling's interval, seconds")


class Subscriber:
    """Mixin: picks this user's channel (round-robin over the channels published) and registers its
    sequence for the checks."""

    def on_start(self) -> None:
        super().on_start()
        channels = self.environment.harness.knob(PUBLISHER, "channels", SETTINGS.channels)
        channel = next(_numbers) % channels
        self.query = {"channel": channel}
        SUBSCRIBERS.append((channel, self.sequence, time.time()))


class SSE(Subscriber, push.SSEUser):
    path = "/sse/events"


class WebSocket(Subscriber, push.WebSocketUser):
    path, resume = "/websocket/ws", False  # the variant has no resume protocol: its losses are the finding


class LongPoll(Subscriber, push.LongPollUser):
    path = "/long_poll/messages"


class ShortPoll(Subscriber, push.ShortPollUser):
    path = "/short_poll/messages"

    def on_start(self) -> None:
        super().on_start()
        self.interval_s = self.environment.parsed_options.poll_interval


USERS = {"sse": SSE, "websocket": WebSocket, "long_poll": LongPoll, "short_poll": ShortPoll}


def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=10, socket_connect_timeout=5)


@events.init.add_listener
def _one_user_class(environment, **_) -> None:
    """The variant decides the protocol: the master (or the single process) spawns that class only;
    workers keep all four, since they spawn by the name the master sends."""
    if not isinstance(environment.runner, WorkerRunner):
        environment.user_classes = [USERS[environment.parsed_options.variant]]


@events.test_start.add_listener
def _forget_subscribers(environment, **_) -> None:
    SUBSCRIBERS.clear()


# --- the sequence checks: pure functions (tests call them) and their registration --------------------
def published_before(r: redis.Redis, channel: int, cutoff: float, scan: int = 20_000) -> int | None:
    """The last sequence of `channel` published at or before `cutoff` (epoch s), from its stream."""
    entries = r.xrevrange(f"realtime:stream:{channel}", "+", "-", count=scan)
    for _, fields in entries:
        message = json.loads(fields[b"m"])
        if message["ts"] <= cutoff:
            return int(message["seq"])
    return None


def published_between(r: redis.Redis, channel: int, after: float, until: float, scan: int = 20_000) -> int:
    """How many messages of `channel` were published after `after` and at or before `until` (epoch s)."""
    count = 0
    for _, fields in r.xrevrange(f"realtime:stream:{channel}", "+", "-", count=scan):
        ts = json.loads(fields[b"m"])["ts"]
        if ts <= after:
            break
        count += ts <= until
    return count


def grace_s(options) -> float:
    """How old a message must be at the stop to be owed: in flight for one poll interval, plus margin."""
    return options.poll_interval + 3.0


@events.test_stop.add_listener
def _tally_tail(environment, **_) -> None:
    """Each process checks its own subscribers (workers too); the tallies are summed on the master."""
    plugin = getattr(environment, "harness", None)
    if plugin is None or not SUBSCRIBERS:
        return
    grace = grace_s(environment.parsed_options)
    cutoff = time.time() - grace
    silent = [(channel, since) for channel, seq, since in SUBSCRIBERS if seq.last is None]
    with _redis() as r:
        heads = {c: published_before(r, c, cutoff) for c in {channel for channel, _, _ in SUBSCRIBERS}}
        # a subscriber that got nothing owes what was published on its channel once it had had time to connect
        owed_silent = sum(published_between(r, channel, since + grace, cutoff) for channel, since in silent)
    plugin.tally("messages_unreceived", unreceived_tail([(c, seq) for c, seq, _ in SUBSCRIBERS], heads))
    plugin.tally("messages_unreceived_silent", owed_silent)
    plugin.tally("messages_received", sum(seq.received for _, seq, _ in SUBSCRIBERS))
    plugin.tally("subscribers", len(SUBSCRIBERS))
    plugin.tally("silent_subscribers", len(silent))


plugin = loadgen.setup(SPEC)  # after _tally_tail: a worker's tallies must be in before it sends its last report


@plugin.invariant("lost_messages", "duplicate_messages", drain=False)  # the clients' own logs: nothing to drain
def _sequences(environment) -> list:
    return check_sequences(dict(environment.harness.recorder.tallies))
