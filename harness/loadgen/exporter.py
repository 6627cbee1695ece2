"""Load-side Prometheus metrics, fed from Locust's `request` event.

Load-side metric names, the one place they are defined (the server side's are in `targets/common.py`):

  harness_load_requests_total            counter    module, variant, name, method
  harness_load_failures_total            counter    module, variant, name, method
  harness_load_request_duration_seconds  histogram  module, variant, name (successes; buckets from 100 us)
  harness_load_users                     gauge      module, variant: running Locust users
  harness_load_dropped_arrivals_total    counter    module, variant: open-model arrivals with no free user
  harness_phase                          gauge      module, variant, run_id, phase: 1 while that phase runs
  harness_fault                          gauge      module, variant, service, action: 1 while a scenario's fault
                                                    is planned to last (the harness plays it through the stack)
  process_cpu_seconds_total              counter    (prometheus-client's process collector)
"""

from __future__ import annotations

import logging
from bisect import bisect_left

from prometheus_client import REGISTRY, Counter, Gauge, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05,
                   0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

USERS = Gauge("harness_load_users", "Running Locust users", ["module", "variant"])
DROPPED = Counter("harness_load_dropped_arrivals", "Open-model arrivals that found no free user",
                  ["module", "variant"])
PHASE = Gauge("harness_phase", "1 while the phase runs", ["module", "variant", "run_id", "phase"])
FAULT = Gauge("harness_fault", "1 while a scenario's fault lasts", ["module", "variant", "service", "action"])

log = logging.getLogger(__name__)


def serve(host: str, port: int, tries: int = 1) -> int | None:
    """Start the exporter on the first free port of port .. port+tries-1 (local workers of one
    `--processes` run share a host); returns the port, or None with a warning when none is free."""
    if port == 0:
        return None
    for candidate in range(port, port + tries):
        try:
            start_http_server(candidate, addr=host)
            return candidate
        except OSError:
            continue
    log.warning("load-side metrics not exported: %s:%s..%s are taken; set HARNESS_LOADGEN_METRICS_PORT",
                host, port, port + tries - 1)
    return None


class RequestMetrics(Collector):
    """harness_load_requests_total, harness_load_failures_total and harness_load_request_duration_seconds.

    Every request Locust reports passes through `Observer.observe`, the load side's hot path, so the
    counts are plain numbers (a list per series) and become metric families only when Prometheus
    scrapes: a custom collector, prometheus-client's API for values kept elsewhere. A labelled
    Counter and Histogram cost a lock and several calls per request; this costs a few increments
    and one `bisect`. Locust runs users as greenlets (no preemption between these statements), and
    a scrape from a real thread reads a histogram whose count is the sum of its buckets, so every
    exposition is consistent.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], list[int]] = {}  # (module, variant, name, method) -> [requests, failures]
        self.latency: dict[tuple[str, ...], list[float]] = {}  # (module, variant, name) -> [bucket counts..., sum]

    def series(self, module: str, variant: str, name: str, method: str) -> tuple[list[int], list[float]]:
        counts = self.counts.setdefault((module, variant, name, method), [0, 0])
        latency = self.latency.setdefault((module, variant, name), [0] * (len(BOUNDS) + 1))
        return counts, latency

    def collect(self):
        requests = CounterMetricFamily("harness_load_requests", "Requests sent by Locust",
                                       labels=["module", "variant", "name", "method"])
        failures = CounterMetricFamily("harness_load_failures", "Failed requests",
                                       labels=["module", "variant", "name", "method"])
        for labels, (sent, failed) in list(self.counts.items()):
            requests.add_metric(labels, sent)
            failures.add_metric(labels, failed)
        latency = HistogramMetricFamily("harness_load_request_duration_seconds",
                                        "Latency timed by the load generator", labels=["module", "variant", "name"])
        for labels, values in list(self.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(BOUND_TEXT, values, strict=False):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric(labels, buckets, values[-1])
        return [requests, failures, latency]


BOUNDS = (*LATENCY_BUCKETS, float("inf"))
BOUND_TEXT = [*map(str, LATENCY_BUCKETS), "+Inf"]
REQUESTS = RequestMetrics()
REGISTRY.register(REQUESTS)


class Observer:
    """Feeds one Locust process's requests into the request metrics; each (name, method) finds its
    series once, not on every request."""

    def __init__(self, module: str, variant: str, metrics: RequestMetrics = REQUESTS) -> None:
        self.module, self.variant, self.metrics = module, variant, metrics
        self._series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe(self, name: str, method: str, seconds: float, failed: bool) -> None:
        series = self._series.get((name, method))
        if series is None:
            series = self._series[name, method] = self.metrics.series(self.module, self.variant, name, method)
        counts, latency = series
        counts[0] += 1
        if failed:
            counts[1] += 1
        else:  # like the exact histograms, latency is over successes
            latency[bisect_left(BOUNDS, seconds)] += 1  # `le` buckets: a value on a bound belongs to it
            latency[-1] += seconds
