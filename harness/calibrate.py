"""A calibration figure per run: how fast this machine runs a fixed piece of Python, right before the run.

Ratios between variants measured side by side carry over between machines; absolutes (requests/s,
milliseconds) do not. `harness compare` sets two runs' absolutes side by side, and without a common
yardstick a faster laptop reads as a code change. Each run records `calibration_ops_s`: iterations per
second of a fixed, single-threaded, pure-Python workload (the median of a few short bursts, about
0.6 s in all), the kind of work a target's request path and Locust's users do. Compare divides a rate's
change by the calibration's change (and multiplies a time's), and says it did.
"""

from __future__ import annotations

import json
import statistics
import time

BURSTS, BURST_S = 3, 0.2


def _unit() -> int:
    """One iteration: what a request path does in small (a dict, a JSON round trip, a string, a sum)."""
    body = {"id": 12345, "name": "calibration", "tags": ["a", "b", "c"], "price": 19.99}
    text = json.dumps(body)
    back = json.loads(text)
    return len(text) + sum(range(200)) + len(f"{back['name']}:{back['id']}")


def ops_per_second(bursts: int = BURSTS, burst_s: float = BURST_S) -> float:
    """Iterations of `_unit` per second: the median of `bursts` bursts of `burst_s` each."""
    rates = []
    for _ in range(bursts):
        done, start = 0, time.perf_counter()
        deadline = start + burst_s
        while (now := time.perf_counter()) < deadline:
            for _ in range(50):
                _unit()
            done += 50
        rates.append(done / (now - start))
    return statistics.median(rates)


def normalised_change(metric: str, a: float | None, b: float | None, cal_a: float | None,
                      cal_b: float | None) -> float | None:
    """B/A of a metric as if B had run on A's machine: a rate's B/A divided by the calibration's B/A, a
    time's (`_ms`, `_s`) multiplied by it; None for anything else (a ratio, a count) or a missing value."""
    if not (a and b and cal_a and cal_b):
        return None
    speed = cal_b / cal_a
    if metric == "rps" or metric.endswith("_rps") or metric.endswith("_per_s"):
        return (b / a) / speed
    if metric.endswith("_ms") or metric.endswith("_s"):
        return (b / a) * speed
    return None
