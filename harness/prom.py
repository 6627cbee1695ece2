"""PromQL over a phase's window, through Prometheus's HTTP API.

Counter increases are taken as the difference of two instant values (at the window's start and
end) rather than `increase()`, which extrapolates; numerator and denominator of a ratio come from
the same two instants, so the ratio is exact up to one scrape at each edge. A gauge over a window
is a subquery at the window's end: `max_over_time(sum(g)[Ws:1s])` (or min, avg; last is its value
at the end).
"""

from __future__ import annotations

import math
import re

import requests


class PrometheusError(RuntimeError):
    pass


def with_labels(selector: str, **labels: str) -> str:
    """Add label matchers to a metric selector: `m{a="1"}` + b=2 -> `m{a="1",b="2"}`."""
    extra = ",".join(f'{k}="{v}"' for k, v in labels.items())
    if not extra:
        return selector
    match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?", selector.strip())
    if match is None:
        raise ValueError(f"not a plain metric selector: {selector!r}")
    name, existing = match.group(1), match.group(2)
    return f"{name}{{{existing},{extra}}}" if existing else f"{name}{{{extra}}}"


LOOKBACK_S = 30  # how far before a window's start its baseline sample may lie (scrapes are every second or so)


def counter_increase(samples: list[tuple[float, float]], start: float) -> float:
    """A counter's growth after `start` from its (time, value) samples in time order: the last sample at
    or before `start` is the baseline (0 if there is none); a drop is a reset, after which the counter
    counts from 0."""
    before = [v for t, v in samples if t <= start]
    previous, grown = (before[-1] if before else 0.0), 0.0
    for t, value in samples:
        if t <= start:
            continue
        grown += value - previous if value >= previous else value
        previous = value
    return grown


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def query(self, expr: str, at: float) -> list[dict]:
        return self._get("query", expr, time=f"{at:.3f}")

    def _get(self, endpoint: str, expr: str, **params: str) -> list[dict]:
        try:
            response = requests.get(f"{self.url}/api/v1/{endpoint}", params={"query": expr, **params},
                                    timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer ({exc}); is it up? "
                                  "`harness status` shows it") from None
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body.get('error', response.text[:200])}")
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        """A range query's series (matrix), for a dashboard panel over a window."""
        return self._get("query_range", expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")

    def value(self, expr: str, at: float) -> float | None:
        result = self.query(f"sum({expr})", at)
        return float(result[0]["value"][1]) if result else None

    def increase(self, selector: str, start: float, end: float) -> float | None:
        """How much a counter (summed over its series) grew between two instants, from the raw samples:
        exact up to one scrape at each edge, and a reset (a restarted process counting from 0 again)
        adds the new count instead of subtracting the old one. A series born inside the window counts
        from 0."""
        lookback = int(end - start) + 1 + LOOKBACK_S
        series = self.query(f"{selector}[{lookback}s]", end)
        if not series:
            return None
        return sum(counter_increase([(float(t), float(v)) for t, v in s["values"]], start) for s in series)

    def over_window(self, selector: str, reduce: str, start: float, end: float) -> float | None:
        """A gauge (summed over its series) reduced over the window: max, min, avg, p99 (of its 1-second
        samples), or last; or its rise: the max over the window minus its value at the window's start."""
        if reduce == "last":
            return self.value(selector, end)
        if reduce == "rise":
            top, first = self.over_window(selector, "max", start, end), self.value(selector, start)
            return None if top is None or first is None else top - first
        if reduce not in ("max", "min", "avg", "p99"):
            raise ValueError(f"reduce must be max, min, avg, p99, rise or last, got {reduce!r}")
        seconds = max(1, math.ceil(end - start))
        function = "quantile_over_time(0.99, " if reduce == "p99" else f"{reduce}_over_time("
        result = self.query(f"{function}sum({selector})[{seconds}s:1s])", end)
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False
