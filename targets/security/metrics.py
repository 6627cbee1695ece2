"""Security & Access's own server-side metrics (beside targets/common.py's), every series with `module`
and `variant` labels:

  harness_security_auth_checks_total             counter  credentials checked, by outcome (accepted, refused)
  harness_security_auth_microseconds_total       counter  wall time spent checking them (verify, or the Redis look-ups)
  harness_security_verify_cpu_microseconds_total  counter  CPU spent verifying tokens locally (JWT variants; a
                                                          session has no local verify: its cost is the look-up)
  harness_security_verify_cpu_median_us          gauge    the median CPU of the last 1,000 local verifies (robust
                                                          to the rare GC pause or steal that inflates the mean)
  harness_security_limiter_decisions_total       counter  limiter decisions by client class (good, abuser, edge,
                                                          other: the key's prefix) and decision (admitted, refused,
                                                          store_error_refused, store_error_admitted)
  harness_security_peak_window_ratio             gauge    boundary probes (keys edge-*): the most requests admitted
                                                          in any trailing window, over the limit, for the newest key
  harness_security_uptime_seconds_total          counter  seconds since start (decisions / uptime = decisions/s)
"""

from __future__ import annotations

import statistics
import time
from collections import deque

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY

MODULE = "security"

AUTH_CHECKS = Counter("harness_security_auth_checks", "Credentials checked", ["module", "variant", "outcome"])
AUTH_US = Counter("harness_security_auth_microseconds", "Wall time spent checking credentials", ["module", "variant"])
VERIFY_CPU_US = Counter("harness_security_verify_cpu_microseconds", "CPU spent verifying tokens locally",
                        ["module", "variant"])
DECISIONS = Counter("harness_security_limiter_decisions", "Rate limiter decisions",
                    ["module", "variant", "client", "decision"])
PEAK_RATIO = Gauge("harness_security_peak_window_ratio", "Boundary probes: most admitted in a trailing window / limit",
                   ["module", "variant"])


CLIENTS = ("good", "abuser", "edge", "other")
DECISION_KINDS = ("admitted", "refused", "store_error_refused", "store_error_admitted")


def declare_decisions(variants: tuple[str, ...]) -> None:
    """Every decision series exists from the start at 0: "no good client was refused" is a 0, not a gap."""
    for variant in variants:
        for client in CLIENTS:
            for decision in DECISION_KINDS:
                DECISIONS.labels(MODULE, variant, client, decision)


def client_class(key: str) -> str:
    prefix = key.split("-", 1)[0]
    return prefix if prefix in ("good", "abuser", "edge") else "other"


class PeakWindow:
    """Per variant, the newest edge-* key's admissions (target clock) and the most of them in any trailing
    window of `window_s`: what a client aligned on window edges really got through."""

    def __init__(self, window_s: float, limit: int) -> None:
        self.window_s, self.limit = window_s, limit
        self.keys: dict[str, str] = {}
        self.times: dict[str, deque] = {}
        self.peaks: dict[str, int] = {}

    def admitted(self, variant: str, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        if self.keys.get(variant) != key:
            self.keys[variant], self.times[variant], self.peaks[variant] = key, deque(), 0
        times = self.times[variant]
        times.append(now)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        self.peaks[variant] = max(self.peaks[variant], len(times))
        PEAK_RATIO.labels(MODULE, variant).set(self.peaks[variant] / self.limit)
        return self.peaks[variant]


class VerifyCpu:
    """Each JWT variant's recent local-verify CPU samples (us); the counter's mean and, at scrape time, the
    median of the last `keep`. `record(variant)` is the callable a `Tokens` reports each verify to."""

    def __init__(self, keep: int = 1000) -> None:
        self.samples: dict[str, deque] = {}
        self.keep = keep

    def record(self, variant: str):
        samples = self.samples.setdefault(variant, deque(maxlen=self.keep))
        counter = VERIFY_CPU_US.labels(MODULE, variant)

        def observe(cpu_us: float) -> None:
            samples.append(cpu_us)
            counter.inc(cpu_us)

        return observe

    def collect(self):
        family = GaugeMetricFamily("harness_security_verify_cpu_median_us", "Median CPU of the last local verifies",
                                   labels=["module", "variant"])
        for variant, samples in list(self.samples.items()):
            if samples:
                family.add_metric([MODULE, variant], statistics.median(samples))
        yield family


def register(collector) -> None:
    try:
        REGISTRY.register(collector)
    except ValueError:  # a second app in one process (tests): the first collector serves
        pass


class Uptime:
    """harness_security_uptime_seconds_total under every variant's label (one process serves them all)."""

    def __init__(self, variants: tuple[str, ...]) -> None:
        self.variants, self.started = variants, time.monotonic()

    def collect(self):
        family = CounterMetricFamily("harness_security_uptime_seconds", "Seconds since the target started",
                                     labels=["module", "variant"])
        for variant in self.variants:
            family.add_metric([MODULE, variant], time.monotonic() - self.started)
        yield family


VERIFY_CPU = VerifyCpu()
register(VERIFY_CPU)


def register_uptime(variants: tuple[str, ...]) -> None:
    register(Uptime(variants))
