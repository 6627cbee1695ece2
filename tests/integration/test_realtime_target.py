"""Real-time Updates against the real stack: the push and poll users of harness/loadgen/push.py receive
the publisher's messages in order with exact latency accounting; a restart of the target is seen as a
dropped connection; SSE (Last-Event-ID) and long polling resume without loss while the WebSocket
variant's loss is counted; a rewound resume is caught as duplicates; bad input is a 4xx; the publisher's
knobs change what it publishes, and bad ones are a 4xx."""

import json
import os
import statistics
import threading
import time

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")  # this pytest process must stay unpatched

import pytest  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402
from served import wait_for  # noqa: E402

from harness.loadgen import knobs, push  # noqa: E402
from harness.modules.realtime import PUBLISHER, SPEC  # noqa: E402
from harness.settings import get_settings  # noqa: E402

pytestmark = pytest.mark.integration
USERS = {"sse": (push.SSEUser, "/sse/events"), "websocket": (push.WebSocketUser, "/websocket/ws"),
         "long_poll": (push.LongPollUser, "/long_poll/messages"),
         "short_poll": (push.ShortPollUser, "/short_poll/messages")}


class Stop(Exception):
    pass


class Listening:
    """One user of `variant` running in a thread (its own gevent hub: this process is not monkey
    patched, and websocket-client blocks its thread only), with every request event it fires."""

    def __init__(self, url: str, variant: str, resume: bool = True, **attrs) -> None:
        base, path = USERS[variant]
        stopping = self.stopping = threading.Event()

        def on_message(user, raw, size):
            if stopping.is_set():
                raise Stop("test over")
            base.on_message(user, raw, size)

        cls = type(f"Test{base.__name__}", (base,), {"path": path, "query": {"channel": 0}, "resume": resume,
                                                     "host": url, "on_message": on_message, **attrs})
        events = Events()
        self.events: list[dict] = []
        events.request.add_listener(lambda **kw: self.events.append(kw))
        self.user = cls(Environment(events=events, host=url))
        self.greenlet = None

    def __enter__(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def _loop(self) -> None:
        self.user.on_start()
        for _ in range(1000):  # bounded: each pass is one connection or one poll
            if self.stopping.is_set():
                return
            self.user.subscribe()
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=40)

    def named(self, name: str) -> list[dict]:
        return [e for e in self.events if e["name"] == name]

    def wait_messages(self, n: int, timeout_s: float = 30) -> None:
        start = len(self.named("message"))

        wait_for(lambda: len(self.named("message")) >= start + n, timeout_s, f"{n} more messages")


@pytest.fixture
def url(target_urls):
    return target_urls["realtime"]


def stream_ts(seqs) -> dict[int, float]:
    r = redis.Redis.from_url(get_settings().redis_url)
    entries = r.xrange("realtime:stream:0", f"{min(seqs)}-0", f"{max(seqs)}-0")
    return {int(json.loads(f[b"m"])["seq"]): json.loads(f[b"m"])["ts"] for _, f in entries}


@pytest.mark.parametrize("variant", sorted(USERS))
def test_each_user_receives_in_order_with_exact_latency(url, variant):
    with Listening(url, variant) as listening:
        listening.wait_messages(15)
    seq = listening.user.sequence
    assert seq.received >= 15 and seq.lost == 0 and seq.duplicated == 0
    messages = listening.named("message")
    published = stream_ts(range(seq.first, seq.last + 1))
    for event in messages:  # start is the publish time the stream holds; the time is receive - publish
        assert event["start_time"] in published.values()
        assert event["response_time"] >= 0 and event["exception"] is None
    if variant in ("sse", "websocket"):
        assert len([e for e in listening.named("connect") if e["exception"] is None]) == 1


@pytest.mark.parametrize("variant,resumes", [("sse", True), ("long_poll", True), ("websocket", False)])
def test_restart_is_a_drop_and_resume_loses_nothing(stack, url, variant, resumes):
    with Listening(url, variant, resume=resumes, retry_s=0.3) as listening:
        listening.wait_messages(5)
        stack.fault_begin("realtime", "restart")
        time.sleep(1.5)  # messages keep being published meanwhile
        stack.fault_end("realtime", "restart")
        listening.wait_messages(20)
    seq = listening.user.sequence
    if variant != "long_poll":
        drops = [e for e in listening.named("disconnect") if e["exception"] and not isinstance(e["exception"], Stop)]
        assert drops, "the drop went unseen"
        # the outage is one failed connect however many prompt retries it refused, and the reconnect that
        # ends it is timed from the first refusal
        connects = listening.named("connect")
        refused = [e for e in connects if e["exception"] is not None]
        assert len(refused) == 1, [str(e["exception"]) for e in refused]
        back = [e for e in connects if e["exception"] is None][-1]
        assert back["start_time"] == refused[0]["start_time"] and back["response_time"] >= 1000
    assert seq.duplicated == 0
    if resumes:
        assert seq.lost == 0, f"{seq.lost} messages lost across the restart"
    else:
        assert seq.lost >= 5, "a WebSocket without resume must show what it missed"


def test_a_rewound_resume_is_caught_as_duplicates(url):
    class Rewinding(push.ShortPollUser):
        def after(self):  # a broken client (or server) that replays what was already delivered
            return {"after": max(0, self.sequence.last - 3)} if self.sequence.last else {}

    with Listening(url, "short_poll", interval_s=0.3) as listening:
        listening.user.after = Rewinding.after.__get__(listening.user)
        listening.wait_messages(10)
    assert listening.user.sequence.duplicated > 0


@pytest.mark.parametrize("path", ["/sse/events?channel=-1", "/sse/events?after=x", "/long_poll/messages?after=-5",
                                  "/long_poll/messages?timeout_s=0", "/short_poll/messages?channel=99999",
                                  "/long_poll/messages?channel=%00"])
def test_bad_input_is_a_4xx(url, path):
    assert requests.get(url + path, timeout=10).status_code == 422


def test_bad_last_event_id_is_a_4xx(url):
    response = requests.get(url + "/sse/events", headers={"Last-Event-ID": "\u00ff\u00fe"}, timeout=10)
    assert response.status_code == 422


def test_held_polls_answer_at_their_timeout(url):
    head = requests.get(url + "/short_poll/messages", timeout=10).json()["last"]
    body = requests.get(url + f"/long_poll/messages?after={head + 10**9}&timeout_s=0.5", timeout=10).json()
    assert body == {"last": head + 10**9, "messages": []}


@pytest.fixture
def publisher(stack):
    settings = get_settings()
    url = knobs.service_url(SPEC, PUBLISHER, settings)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {settings.admin_secret}"
    yield url, session
    assert session.put(f"{url}/admin/knobs", json={}, timeout=10).status_code == 200  # its defaults again


def published_since(channel: int, since: float) -> list[dict]:
    r = redis.Redis.from_url(get_settings().redis_url)
    messages = [json.loads(f[b"m"]) for _, f in r.xrevrange(f"realtime:stream:{channel}", "+", "-", count=500)]
    return sorted((m for m in messages if m["ts"] > since), key=lambda m: m["seq"])


def at_least(n: int, messages: list[dict]) -> list[dict] | None:
    return messages if len(messages) >= n else None


def spacing_s(messages: list[dict]) -> float:
    """The median time between consecutive publishes: 1 / rate, whatever stalls the machine had."""
    return statistics.median(b["ts"] - a["ts"] for a, b in zip(messages, messages[1:], strict=False))


def test_the_publisher_knobs_change_what_it_publishes(publisher):
    url, session = publisher
    for rate in (5, 50):
        answer = session.put(f"{url}/admin/knobs", json={"publish_rate": rate, "payload_bytes": 7, "channels": 2},
                             timeout=10)
        assert answer.status_code == 200, answer.text
        since = time.time() + 0.5  # the tick already scheduled runs at the old rate
        second = wait_for(lambda s=since: at_least(8, published_since(1, s)), 30, "8 messages on channel 1")
        assert spacing_s(second) == pytest.approx(1 / rate, rel=0.2), (rate, second)
        assert {len(m["p"]) for m in second} == {7}
    config = session.get(f"{url}/config", timeout=10).json()
    assert (config["publish_rate"], config["payload_bytes"], config["channels"]) == (50, 7, 2)
    assert set(config["last_seq"]) == {"0", "1"}
    assert session.put(f"{url}/admin/knobs", json={}, timeout=10).json() == {
        "publish_rate": None, "payload_bytes": None, "channels": None}
    config = session.get(f"{url}/config", timeout=10).json()
    settings = SPEC.settings()
    assert (config["publish_rate"], config["payload_bytes"], config["channels"]) == (
        settings.publish_rate, settings.payload_bytes, settings.channels)


@pytest.mark.parametrize("body,field", [({"publish_rate": 0}, "publish_rate"), ({"channels": "x"}, "channels"),
                                        ({"rate": 5}, "rate")])
def test_bad_publisher_knobs_are_a_4xx_and_change_nothing(publisher, body, field):
    url, session = publisher
    before = session.get(f"{url}/admin/knobs", timeout=10).json()
    answer = session.put(f"{url}/admin/knobs", json=body, timeout=10)
    assert answer.status_code == 422 and field in answer.json()["error"], answer.text
    assert session.get(f"{url}/admin/knobs", timeout=10).json() == before
    assert requests.put(f"{url}/admin/knobs", json={"publish_rate": 5}, timeout=10).status_code == 401
