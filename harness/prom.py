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


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def query(self, expr: str, at: float) -> list[dict]:
        try:
            response = requests.get(f"{self.url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"},
                                    timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer ({exc}); is it up? "
                                  "`harness status` shows it") from None
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body.get('error', response.text[:200])}")
        return body["data"]["result"]

    def value(self, expr: str, at: float) -> float | None:
        result = self.query(f"sum({expr})", at)
        return float(result[0]["value"][1]) if result else None

    def increase(self, selector: str, start: float, end: float) -> float | None:
        """How much a counter (summed over its series) grew between two instants."""
        after = self.value(selector, end)
        if after is None:
            return None
        return after - (self.value(selector, start) or 0.0)

    def over_window(self, selector: str, reduce: str, start: float, end: float) -> float | None:
        """A gauge (summed over its series) reduced over the window: max, min, avg, or last."""
        if reduce == "last":
            return self.value(selector, end)
        if reduce not in ("max", "min", "avg"):
            raise ValueError(f"reduce must be max, min, avg or last, got {reduce!r}")
        seconds = max(1, math.ceil(end - start))
        result = self.query(f"{reduce}_over_time(sum({selector})[{seconds}s:1s])", end)
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False
