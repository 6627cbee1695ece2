"""Real-time Updates' own server-side metrics (beside targets/common.py's), every series with `module`
and `variant` labels; the process ones carry every variant's label with the same value (one process
serves all variants, and a phase runs one, so `{variant="x"}` over x's phase is x's cost). The publisher
process's own (its /metrics) has `variant="all"` and a `channel` label:

  harness_realtime_connections                    gauge    open subscriptions (held polls count)
  harness_realtime_messages_delivered_total       counter  messages written to clients
  harness_realtime_bytes_sent_total               counter  message bytes written to clients
  harness_realtime_requests_total                 counter  HTTP requests and WebSocket handshakes
  harness_realtime_process_cpu_microseconds_total counter  the process's CPU
  harness_realtime_uptime_seconds_total           counter  seconds since start (requests / uptime = requests/s)
  harness_realtime_resident_memory_mib            gauge    the process's RSS
  harness_realtime_rss_growth_per_connection_kib  gauge    (RSS - idle RSS) / open connections (10 or more)
  harness_realtime_published_total                counter  the publisher: messages published per channel
"""

from __future__ import annotations

import resource
import time

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY

MODULE = "realtime"

CONNECTIONS = Gauge("harness_realtime_connections", "Open subscriptions (held polls count)", ["module", "variant"])
DELIVERED = Counter("harness_realtime_messages_delivered", "Messages written to clients", ["module", "variant"])
BYTES = Counter("harness_realtime_bytes_sent", "Message bytes written to clients", ["module", "variant"])
REQUESTS = Counter("harness_realtime_requests", "HTTP requests and WebSocket handshakes", ["module", "variant"])
PUBLISHED = Counter("harness_realtime_published", "Messages published", ["module", "variant", "channel"])


class ProcessCollector:
    """The process's CPU and memory under every variant's label: the target serves all variants in one
    process and a phase runs one variant, so `{variant="x"}` over x's phase is x's cost. RSS growth per
    connection is the RSS above the process's idle RSS (taken when it became ready) over the open
    connections; RSS rarely shrinks, so a later phase reuses an earlier one's pages: read it per run."""

    def __init__(self, variants: tuple[str, ...]) -> None:
        self.variants, self.started = variants, time.monotonic()
        self.idle_rss = rss_bytes()

    def collect(self):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_us, rss = (usage.ru_utime + usage.ru_stime) * 1e6, rss_bytes()
        cpu = CounterMetricFamily("harness_realtime_process_cpu_microseconds", "Target process CPU",
                                  labels=["module", "variant"])
        mem = GaugeMetricFamily("harness_realtime_resident_memory_mib", "Target RSS", labels=["module", "variant"])
        per = GaugeMetricFamily("harness_realtime_rss_growth_per_connection_kib",
                                "(RSS - idle RSS) / open connections", labels=["module", "variant"])
        uptime = CounterMetricFamily("harness_realtime_uptime_seconds", "Seconds since the process started; "
                                     "requests over it is requests/s over exactly a phase's window",
                                     labels=["module", "variant"])
        for variant in self.variants:
            cpu.add_metric([MODULE, variant], cpu_us)
            mem.add_metric([MODULE, variant], rss / 2**20)
            open_now = CONNECTIONS.labels(MODULE, variant)._value.get()
            if open_now >= 10:  # a handful of connections says nothing about their cost
                per.add_metric([MODULE, variant], max(0, rss - self.idle_rss) / open_now / 1024)
            uptime.add_metric([MODULE, variant], time.monotonic() - self.started)
        return [cpu, mem, per, uptime]


_PAGE = resource.getpagesize()


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:  # not Linux: the peak is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_collector: ProcessCollector | None = None


def register_collector(variants: tuple[str, ...]) -> None:
    """One collector per process, however many apps it builds (tests build several)."""
    global _collector
    if _collector is None:
        _collector = ProcessCollector(variants)
        REGISTRY.register(_collector)
