"""Exact latencies: one HdrHistogram per request name, in microseconds, successes only.

Locust's own stats round response times (whole ms under 100 ms), which erases sub-millisecond
responses; these histograms keep them. A failed request is counted, per name and per reason (the HTTP
status, or the exception's class name), and never enters a histogram: a variant that fails fast must
not win on latency. Requests that started during warm-up are left out by their start time, so the cut
is exact on every node. Workers ship their state to the master inside Locust's own worker reports,
where it is added (histograms added, counters summed, id sets joined; never averaged).

The per-request path is the load generator's hot path: every microsecond spent here is taken from
the system under test on a shared machine. A success is counted under its exact value in
microseconds (one dict increment) and those counts go into the HdrHistogram (`record_value(value,
count)`, its public API) only when the histograms are read, or when a name's pending values exceed
`PENDING_LIMIT` distinct values: the same histogram, at a fraction of the per-request cost, because
latencies repeat (`harness bench` measures what this saves).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 600_000_000, 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9, 99.99)
AGGREGATE = "Aggregated"
PENDING_LIMIT = 20_000  # distinct microsecond values a name holds before they go into its histogram


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def decode(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded.encode("ascii") if isinstance(encoded, str) else encoded)


def merge(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    total = new_histogram()
    for histogram in histograms:
        total.add(histogram)
    return total


def summarize(histogram: HdrHistogram) -> dict:
    """Count, mean, max and the standard percentiles, in milliseconds."""
    if histogram.get_total_count() == 0:
        return {"count": 0}
    result = {"count": histogram.get_total_count(), "mean": histogram.get_mean_value() / 1000,
              "max": histogram.get_max_value() / 1000}
    for p in PERCENTILES:
        result[percentile_key(p)] = histogram.get_value_at_percentile(p) / 1000
    return result


def percentile_key(p: float) -> str:
    return "p" + f"{p:g}".replace(".", "")


def spectrum(histogram: HdrHistogram) -> list[list[float]]:
    """[percentile, ms] pairs for a percentile plot, up to the maximum."""
    if histogram.get_total_count() == 0:
        return []
    points = [[p, histogram.get_value_at_percentile(p) / 1000] for p in (0.0, 25.0, *PERCENTILES, 99.999)]
    return [*points, [100.0, histogram.get_max_value() / 1000]]


class ExactRecorder:
    def __init__(self) -> None:
        self._histograms: dict[str, HdrHistogram] = {}
        self._service: dict[str, HdrHistogram] = {}
        # Successes not yet in their histogram: {name: {microseconds: count}}, latency and open-model service.
        self._pending: dict[str, dict[int, int]] = {}
        self._pending_service: dict[str, dict[int, int]] = {}
        self.errors: Counter[tuple[str, str]] = Counter()  # (name, reason) -> failed requests
        self.tallies: Counter[str] = Counter()
        self.ids: dict[str, set[str]] = {}  # named id sets the invariants compare with the store
        self.completions: Counter[int] = Counter()  # successes + failures per wall-clock second, warm-up included
        self.failures_per_second: Counter[int] = Counter()
        # Open model only: service time (from the actual send) per name (`service`), and the schedule lag.
        self.lag = new_histogram()
        # The first measured start and the last completion bound the exact window the counts cover
        # (each worker cuts warm-up at its own start, so the master's clock would not fit it).
        self.first_start, self.last_completion = float("inf"), 0.0
        self.measured_start = float("inf")

    @property
    def histograms(self) -> dict[str, HdrHistogram]:
        """Latency per request name (successes, measured window), every pending value in."""
        _flush(self._pending, self._histograms)
        return self._histograms

    @property
    def service(self) -> dict[str, HdrHistogram]:
        """Open model: service time per request name, from the actual send."""
        _flush(self._pending_service, self._service)
        return self._service

    def reset(self, measured_start: float) -> None:
        for state in (self._histograms, self._service, self._pending, self._pending_service, self.errors,
                      self.tallies, self.ids, self.completions, self.failures_per_second):
            state.clear()
        self.lag.reset()
        self.first_start, self.last_completion = float("inf"), 0.0
        self.measured_start = measured_start

    def record(self, name: str, response_time_ms: float, start_time: float, failed: str | None = None,
               intended_start: float | None = None) -> None:
        """Record one request. `failed` is None for a success, else the reason ("500", "ConnectionError").
        In the open model a success's latency counts from the arrival's intended start."""
        end = start_time + response_time_ms / 1000
        self.completions[int(end)] += 1
        began = start_time if intended_start is None else intended_start
        if began < self.measured_start:
            return
        if began < self.first_start:
            self.first_start = began
        if end > self.last_completion:
            self.last_completion = end
        if failed:
            self.errors[name, failed] += 1
            self.failures_per_second[int(end)] += 1
            return
        if intended_start is None:
            _count(self._pending, self._histograms, name, response_time_ms)
        else:
            _count(self._pending, self._histograms, name,
                   response_time_ms + max(0.0, start_time - intended_start) * 1000)
            _count(self._pending_service, self._service, name, response_time_ms)

    def record_lag(self, intended_start: float, lag_s: float) -> None:
        if intended_start >= self.measured_start:
            self.lag.record_value(_clamp_us(lag_s * 1000))

    def add_id(self, name: str, item: str) -> None:
        ids = self.ids.get(name)
        if ids is None:
            ids = self.ids[name] = set()
        ids.add(item)

    def take_delta(self) -> dict:
        """What a worker sends in one report; its local state starts over after."""
        delta = {"histograms": {n: encode(h) for n, h in self.histograms.items()},
                 "service": {n: encode(h) for n, h in self.service.items()}, "lag": encode(self.lag),
                 "errors": [[name, reason, n] for (name, reason), n in self.errors.items()],
                 "tallies": dict(self.tallies), "ids": {name: sorted(ids) for name, ids in self.ids.items()},
                 "completions": dict(self.completions), "failures_per_second": dict(self.failures_per_second),
                 "count": sum(h.get_total_count() for h in self.histograms.values()),
                 "first_start": self.first_start, "last_completion": self.last_completion}
        self.reset(self.measured_start)
        return delta

    def add_delta(self, delta: dict) -> None:
        for name, encoded in delta.get("histograms", {}).items():
            self.histograms.setdefault(name, new_histogram()).add(decode(encoded))
        for name, encoded in delta.get("service", {}).items():
            self.service.setdefault(name, new_histogram()).add(decode(encoded))
        self.first_start = min(self.first_start, delta.get("first_start", float("inf")))
        self.last_completion = max(self.last_completion, delta.get("last_completion", 0.0))
        if delta.get("lag"):
            self.lag.add(decode(delta["lag"]))
        for name, reason, n in delta.get("errors", []):
            self.errors[name, reason] += n
        self.tallies.update(delta.get("tallies", {}))
        for name, ids in delta.get("ids", {}).items():
            self.ids.setdefault(name, set()).update(ids)
        self.completions.update({int(k): v for k, v in delta.get("completions", {}).items()})
        self.failures_per_second.update({int(k): v for k, v in delta.get("failures_per_second", {}).items()})

    def aggregate(self) -> HdrHistogram:
        return merge(self.histograms.values())

    def errors_of(self, name: str | None = None) -> dict[str, int]:
        """{reason: count} for one request name, or summed over all (name None)."""
        reasons: Counter[str] = Counter()
        for (n, reason), count in self.errors.items():
            if name is None or n == name:
                reasons[reason] += count
        return dict(sorted(reasons.items()))

    def results(self) -> dict:
        names = sorted({*self.histograms, *(name for name, _ in self.errors)})
        per_name = {}
        for name in names:
            histogram = self.histograms.get(name) or new_histogram()
            per_name[name] = _entry(histogram, self.errors_of(name))
        per_name[AGGREGATE] = _entry(self.aggregate(), self.errors_of())
        results = {"requests": per_name, "tallies": dict(self.tallies),
                   "first_start": self.first_start if self.last_completion else None,
                   "last_completion": self.last_completion or None,
                   "completions_per_second": {str(k): v for k, v in sorted(self.completions.items())},
                   "failures_per_second": {str(k): v for k, v in sorted(self.failures_per_second.items())}}
        if self.service:
            service = {name: {**summarize(h), "hdr": encode(h)} for name, h in sorted(self.service.items())}
            total = merge(self.service.values())
            service[AGGREGATE] = {**summarize(total), "hdr": encode(total)}
            results["service"] = service
            results["schedule_lag_ms"] = summarize(self.lag)
        return results


def _entry(histogram: HdrHistogram, errors: dict[str, int]) -> dict:
    return {**summarize(histogram), "failures": sum(errors.values()), "errors": errors, "hdr": encode(histogram)}


def _clamp_us(ms: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, round(ms * 1000)))


def _count(pending: dict[str, dict[int, int]], histograms: dict[str, HdrHistogram], name: str, ms: float) -> None:
    counts = pending.get(name)
    if counts is None:
        counts = pending[name] = {}
    us = round(ms * 1000)
    us = LOWEST_US if us < LOWEST_US else HIGHEST_US if us > HIGHEST_US else us  # _clamp_us, inlined
    counts[us] = counts.get(us, 0) + 1
    if len(counts) > PENDING_LIMIT:
        _flush({name: counts}, histograms)


def _flush(pending: dict[str, dict[int, int]], histograms: dict[str, HdrHistogram]) -> None:
    for name, counts in pending.items():
        histogram = histograms.get(name)
        if histogram is None:
            histogram = histograms[name] = new_histogram()
        for us, n in counts.items():
            histogram.record_value(us, n)
        counts.clear()
