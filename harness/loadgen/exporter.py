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

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

disable_created_metrics()

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05,
                   0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("harness_load_requests", "Requests sent by Locust", ["module", "variant", "name", "method"])
FAILURES = Counter("harness_load_failures", "Failed requests", ["module", "variant", "name", "method"])
LATENCY = Histogram("harness_load_request_duration_seconds", "Latency timed by the load generator",
                    ["module", "variant", "name"], buckets=LATENCY_BUCKETS)
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


class Observer:
    """Feeds one Locust process's requests into the metrics above; the labelled children are looked
    up once per request name, not on every request (the per-request path stays cheap)."""

    def __init__(self, module: str, variant: str) -> None:
        self.module, self.variant = module, variant
        self._children: dict[tuple[str, str], tuple] = {}

    def observe(self, name: str, method: str, seconds: float, failed: bool) -> None:
        children = self._children.get((name, method))
        if children is None:
            labels = (self.module, self.variant, name, method)
            children = self._children[name, method] = (REQUESTS.labels(*labels), FAILURES.labels(*labels),
                                                       LATENCY.labels(self.module, self.variant, name))
        children[0].inc()
        if failed:
            children[1].inc()
        else:  # like the exact histograms, latency is over successes
            children[2].observe(seconds)
