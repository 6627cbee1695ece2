"""Real-time Updates: one publisher, many subscribers, four ways to deliver (push or poll).

A publisher process (`targets/realtime/publisher.py`) stamps every message with its channel's
sequence number and the publish time and publishes it through Redis pub/sub (and appends it to the
channel's Redis Stream, for resume). The target (`targets/realtime/`) holds one Redis subscription
per process and fans it out to its clients, over Server-Sent Events, WebSocket, long polling or
short polling. The load side (`harness/loadgen/push.py`) records each message's delivery latency
(receive time minus publish time, one clock) and checks every connection's sequence.
"""

from __future__ import annotations

from harness.claims import Claim
from harness.spec import Fault, InvariantSpec, Knob, ModuleSpec, Process, Scenario, ServerMetric, Variant
from targets.realtime.settings import PUBLISHER_PORT, Settings

MESSAGE = "message"  # every delivered message is one Locust request of this name; its time is the latency
PUSH = ("sse", "websocket")
RESUMING = ("sse", "long_poll", "short_poll")
PUBLISHER = "realtime_publisher"  # its knobs: publish_rate, payload_bytes, channels (targets/realtime/publisher.py)


def _per_variant(name: str) -> str:
    return f"harness_realtime_{name}"


SPEC = ModuleSpec(
    id="realtime",
    title="Real-time Updates",
    port=18105,
    services=("redis",),
    processes=(Process(name=PUBLISHER, app="targets.realtime.publisher", port=PUBLISHER_PORT),),
    settings=Settings,
    repeat=1,
    variants=(
        Variant(name="sse", sentence="Server-Sent Events: one long HTTP response per client; the browser's "
                "Last-Event-ID resumes after a drop"),
        Variant(name="websocket", sentence="a WebSocket per client, push only, no resume protocol: what is "
                "published while it reconnects is lost"),
        Variant(name="long_poll", sentence="each request is held until a message or a timeout; the next one "
                "asks for what came after the last sequence seen"),
        Variant(name="short_poll", sentence="the client asks every second (the interval) for what came after "
                "the last sequence seen"),
    ),
    scenarios=(
        Scenario(name="steady", description="300 subscribers of one channel, 10 messages/s of 100 bytes",
                 users=300, duration_s=15, warmup_s=5, options=("--spawn-rate", "150")),
        Scenario(name="fanout", description="1,000 subscribers, one message per second: each is a burst to "
                 "every connection, and its p99 is the delivery spread", variants=PUSH, users=1000,
                 duration_s=12, warmup_s=7, options=("--spawn-rate", "250"),
                 knobs=(Knob(service=PUBLISHER, name="publish_rate", value=1),)),
        Scenario(name="restart", description="the target is restarted mid-window: every connection drops "
                 "and comes back", variants=("sse", "websocket", "long_poll"), users=100, duration_s=15,
                 warmup_s=4, error_budget=0.05, options=("--spawn-rate", "100"),
                 faults=(Fault(service="realtime", action="restart", at_s=6, duration_s=2),)),
        Scenario(name="scale", description="1,000 subscribers at 10 messages/s (10,000 deliveries/s): what "
                 "this machine holds", variants=PUSH, users=1000, duration_s=20, warmup_s=8,
                 options=("--spawn-rate", "250")),
    ),
    default_scenarios=("steady", "fanout", "restart"),
    main_scenario="steady",
    latency_of=MESSAGE,
    server_metrics=(
        ServerMetric(name="cpu_us_per_message", label="server CPU us/message", kind="ratio",
                     numerator=_per_variant("process_cpu_microseconds_total"),
                     denominator=_per_variant("messages_delivered_total")),
        ServerMetric(name="requests_per_s", label="server requests/s", kind="ratio",
                     numerator=_per_variant("requests_total"), denominator=_per_variant("uptime_seconds_total")),
        ServerMetric(name="connections", label="open connections", kind="gauge", reduce="max",
                     numerator=_per_variant("connections")),
        ServerMetric(name="kib_per_connection", label="KiB RSS/connection", kind="gauge", reduce="max",
                     numerator=_per_variant("rss_growth_per_connection_kib")),
        ServerMetric(name="rss_mib", label="target RSS MiB", kind="gauge", reduce="max",
                     numerator=_per_variant("resident_memory_mib")),
    ),
    invariants=(
        InvariantSpec(name="lost_messages", sentence="every message published while a connection was "
                      "subscribed reached it (counted per connection by sequence)", enforced_for=RESUMING),
        InvariantSpec(name="duplicate_messages", sentence="no connection received a message twice or out of "
                      "order"),
    ),
    columns=("rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "failures", "connections", "requests_per_s",
             "cpu_us_per_message", "kib_per_connection", "rss_mib", "lost_messages", "duplicate_messages",
             "fault_availability", "load_cpu_us_per_request"),
    compare=("rps", "p50_ms", "p99_ms", "requests_per_s", "cpu_us_per_message", "kib_per_connection"),
    progress=("connections", "requests_per_s"),
    bar_plots=("p99_ms", "cpu_us_per_message", "kib_per_connection"),
    # Thresholds were set from measured runs on a shared 2-core machine (target, publisher, Redis,
    # Prometheus and Locust on the same cores), with margin: see docs/workshops/realtime.md. Each sentence states
    # its threshold (tests/unit/test_claim_sentences.py).
    claims=(
        Claim("push_beats_short_poll_sse", "In steady, sse's p99 delivery latency is at most 0.5x short_poll's: "
              "push delivers faster than short polling.", "p99_ms", "sse", "<=", 0.5, baseline="short_poll",
              scenario="steady"),
        Claim("push_beats_short_poll_ws", "In steady, websocket's p99 delivery latency is at most 0.5x "
              "short_poll's.", "p99_ms", "websocket", "<=", 0.5, baseline="short_poll", scenario="steady"),
        Claim("short_poll_median", "In steady, short_poll's median delivery latency is at least 350 ms: a message "
              "waits for the next poll.", "p50_ms", "short_poll", ">=", 350, scenario="steady",
              demonstration="holds by construction: a client that asks once a second finds a message half a "
              "second old on average"),
        Claim("long_poll_between", "In steady, long_poll's median delivery latency is at most 0.5x short_poll's: "
              "long polling sits between push and short polling.", "p50_ms", "long_poll", "<=", 0.5,
              baseline="short_poll", scenario="steady"),
        Claim("short_poll_requests", "In steady, short_poll costs the server at least 200 requests/s (connections "
              "/ interval), whether or not anything was published.", "requests_per_s", "short_poll", ">=", 200,
              scenario="steady",
              demonstration="holds by construction: 300 clients each ask once a second"),
        Claim("push_requests", "In steady, sse costs the server at most 5 requests/s once connected.",
              "requests_per_s", "sse", "<=", 5, scenario="steady",
              demonstration="holds by construction: an SSE client sends one request per connection"),
        Claim("ws_requests", "In steady, websocket costs the server at most 5 requests/s once connected.",
              "requests_per_s", "websocket", "<=", 5, scenario="steady",
              demonstration="holds by construction: a WebSocket client sends one upgrade request per connection"),
        Claim("sse_cpu", "In steady, the server spends at most 150 us of CPU per delivered sse message.",
              "cpu_us_per_message", "sse", "<=", 150, scenario="steady"),
        Claim("long_poll_cpu", "In steady, long_poll costs the server at least 1.3x sse's CPU per delivered "
              "message: a whole request per message.", "cpu_us_per_message", "long_poll", ">=", 1.3,
              baseline="sse", scenario="steady"),
        Claim("sse_memory", "In fanout, an sse connection costs at most 300 KiB of target memory, not megabytes.",
              "kib_per_connection", "sse", "<=", 300, scenario="fanout"),
        Claim("fanout_spread_sse", "In fanout, sse's p99 delivery latency is at most 750 ms: one message to 1,000 "
              "connections reaches 99% of them within it.", "p99_ms", "sse", "<=", 750, scenario="fanout"),
        Claim("fanout_spread_ws", "In fanout, websocket's p99 delivery latency is at most 750 ms over 1,000 "
              "connections.", "p99_ms", "websocket", "<=", 750, scenario="fanout"),
        Claim("sse_resumes", "After the target restarts (restart), sse loses exactly 0 messages: it resumes from "
              "Last-Event-ID.", "lost_messages", "sse", "==", 0, scenario="restart",
              demonstration="restates the invariant lost_messages, enforced for sse"),
        Claim("long_poll_resumes", "After the target restarts (restart), long_poll loses exactly 0 messages: it "
              "resumes from the last sequence.", "lost_messages", "long_poll", "==", 0, scenario="restart",
              demonstration="restates the invariant lost_messages, enforced for long_poll"),
        Claim("websocket_loses", "After the target restarts (restart), websocket loses more than 0 messages: "
              "without a resume protocol, what is published while it reconnects is lost.", "lost_messages",
              "websocket", ">", 0, scenario="restart"),
    ),
)
