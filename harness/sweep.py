"""The adaptive sweep, as pure functions: which rate and variants come next, where each knee is.

Rates start at `start_rate` and rise by `factor`. At each step every variant still holding runs at
the same rate, one after another (A B C at r, then the ones still holding at r x factor), until
none holds, `max_steps` rates were tried, or the pass's `time_cap_s` is spent. A variant holds a
rate when its p99 is within the bound, no arrival was dropped, it achieved >= 95% of the rate and
its failures stayed within the scenario's error budget (in a sweep, failures under overload are
how a rate breaks, so they end the variant's climb instead of invalidating the claim).

A pass's knee is the highest rate held before the first one that broke; "< start rate" when the
first broke, ">= top rate tried" when none broke. Each repetition is one pass; the knee is the
median of the passes' knees, censoring carried (harness/censored.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import censored
from harness.record import Phase
from harness.spec import Sweep

ACHIEVED_SHARE = 0.95
MEDIANS = ("achieved", "p99_ms", "failure_ratio")


@dataclass(frozen=True)
class Step:
    index: int
    rate: float
    variants: tuple[str, ...]


def rate_at(sweep: Sweep, index: int) -> float:
    """The step's rate, to three significant figures (150, 225, 338, 506, ...)."""
    return float(f"{sweep.start_rate * sweep.factor ** index:.3g}")


def holds(point: dict, bound_ms: float, budget: float) -> bool:
    """point: rate, achieved (successful/s), p99_ms, dropped, failure_ratio."""
    p99, achieved = point.get("p99_ms"), point.get("achieved")
    return (p99 is not None and p99 <= bound_ms and not point.get("dropped")
            and achieved is not None and achieved >= ACHIEVED_SHARE * point["rate"]
            and (point.get("failure_ratio") or 0.0) <= budget)


def next_step(sweep: Sweep, variants: list[str], tried: dict[str, list[dict]], elapsed_s: float,
              budget: float, bound_ms: float | None = None) -> Step | None:
    """The next step of one pass, from the points so far (`tried[variant]`, rising), or None when done."""
    bound = bound_ms if bound_ms is not None else sweep.p99_bound_ms
    index = max((len(tried.get(v, [])) for v in variants), default=0)
    if index >= sweep.max_steps or (index and elapsed_s >= sweep.time_cap_s):
        return None
    rising = tuple(v for v in variants if len(tried.get(v, [])) == index
                   and all(holds(p, bound, budget) for p in tried.get(v, [])))
    return Step(index, rate_at(sweep, index), rising) if rising else None


def knee(points: list[dict], bound_ms: float, budget: float) -> float | dict | None:
    """One pass's knee from its points in rising order: a rate, or a censored bound."""
    if not points:
        return None
    for i, point in enumerate(points):
        if not holds(point, bound_ms, budget):
            return censored.lt(point["rate"]) if i == 0 else points[i - 1]["rate"]
    return censored.ge(points[-1]["rate"])


def point_of(phase: Phase) -> dict:
    return {"rate": phase.rate, "achieved": phase.rps, "p99_ms": phase.latency_ms.get("p99"),
            "dropped": phase.dropped or 0, "failure_ratio": phase.failure_ratio}


def curves(phases: list[Phase], bound_ms: dict[str, float]) -> dict:
    """{group: {bound_ms, variants: {variant: {points, passes, knee_rate}}}} from the sweep phases.

    Points are medians over the passes at each rate; `passes` are the knees of each repetition and
    `knee_rate` their median. `bound_ms` is each swept group's p99 bound.
    """
    grouped: dict[str, dict[str, dict[int, list[Phase]]]] = {}
    for phase in phases:
        if phase.step is not None and not phase.error:
            grouped.setdefault(phase.group, {}).setdefault(phase.variant, {}).setdefault(
                phase.repetition, []).append(phase)
    result = {}
    for group, variants in grouped.items():
        bound = bound_ms[group]
        result[group] = {"bound_ms": bound, "variants": {}}
        for variant, passes in variants.items():
            first = next(iter(passes.values()))[0]
            budget = first.error_budget if first.error_budget is not None else 0.0
            knees = [knee([point_of(p) for p in sorted(ps, key=lambda p: p.step)], bound, budget)
                     for ps in passes.values()]
            by_rate: dict[float, list[dict]] = {}
            for phase in (p for ps in passes.values() for p in ps):
                by_rate.setdefault(phase.rate, []).append(point_of(phase))
            points = [{"rate": rate, **{k: censored.median(p[k] for p in ps) for k in MEDIANS},
                       "dropped": sum(p["dropped"] for p in ps),
                       "held": sum(holds(p, bound, budget) for p in ps), "runs": len(ps)}
                      for rate, ps in sorted(by_rate.items())]
            result[group]["variants"][variant] = {"points": points, "passes": knees,
                                                  "knee_rate": censored.median(knees)}
    return result
