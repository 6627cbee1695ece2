"""Censored values: a number known only as a bound ("< 150", ">= 900"), kept as a value, not guessed.

A sweep's knee is censored when a variant holds no rate ("< lowest rate") or every rate it tried
(">= top rate"); a recovery time when the window ends first (">= remaining seconds"). Claims decide
from the bounds where the bounds decide, and only there. Quantities here are non-negative (rates,
seconds, ratios of them), so "< v" means [0, v).

In run.json a value is a number, null, or {"value": v, "censor": "lt" | "le" | "gt" | "ge"}, or
{"low": a, "high": b, "censor": "between"} for a median of bounds that is bounded on both sides.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

INF = math.inf


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    @property
    def exact(self) -> bool:
        return self.lo == self.hi and not (self.lo_open or self.hi_open)


def lt(value: float) -> dict:
    return {"value": value, "censor": "lt"}


def ge(value: float) -> dict:
    return {"value": value, "censor": "ge"}


def interval(value) -> Interval | None:
    """The set of numbers a value stands for; None for a missing value (or NaN)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isnan(value) else Interval(float(value), float(value))
    censor = value.get("censor")
    if censor == "between":
        return Interval(float(value["low"]), float(value["high"]))
    v = value.get("value")
    if v is None:
        return Interval(INF, INF) if censor == "infinite" else None
    return {None: Interval(v, v), "lt": Interval(0.0, v, hi_open=True), "le": Interval(0.0, v),
            "gt": Interval(v, INF, lo_open=True, hi_open=True), "ge": Interval(v, INF, hi_open=True)}[censor]


def value_of(span: Interval | None) -> float | dict | None:
    """An interval as run.json stores it: a plain number when exact."""
    if span is None:
        return None
    if span.exact:
        return INF_VALUE if span.lo == INF else span.lo
    if span.hi == INF:
        return INF_VALUE if span.lo == INF else {"value": span.lo, "censor": "gt" if span.lo_open else "ge"}
    if span.lo == 0 and not span.lo_open:
        return {"value": span.hi, "censor": "lt" if span.hi_open else "le"}
    return {"low": span.lo, "high": span.hi, "censor": "between"}


INF_VALUE = {"value": None, "censor": "infinite"}  # JSON has no infinity


def median(values) -> float | dict | None:
    """The median over repetitions; with censored values, the bounds of the median.

    The median lies between the median of the lower bounds and the median of the upper bounds.
    """
    spans = [s for s in map(interval, values) if s is not None]
    if not spans:
        return None
    if all(s.exact for s in spans):
        return statistics.median(s.lo for s in spans)
    if all(s == spans[0] for s in spans):
        return value_of(spans[0])
    lo, hi = statistics.median(s.lo for s in spans), statistics.median(s.hi for s in spans)
    lo_open = any(s.lo == lo for s in spans) and all(s.lo_open for s in spans if s.lo == lo)
    hi_open = hi == INF or (any(s.hi == hi for s in spans) and all(s.hi_open for s in spans if s.hi == hi))
    return value_of(Interval(lo, hi, lo_open, hi_open))


def maximum(values) -> float | dict | None:
    spans = [s for s in map(interval, values) if s is not None]
    if not spans:
        return None
    lo, hi = max(s.lo for s in spans), max(s.hi for s in spans)
    return value_of(Interval(lo, hi, all(s.lo_open for s in spans if s.lo == lo),
                             any(s.hi_open for s in spans if s.hi == hi)))


def ratio(a: Interval, b: Interval) -> Interval | None:
    """Bounds of a / b for non-negative a and b; None when it is undefined (0 / 0)."""
    if b.hi == 0:  # b is exactly 0: a / 0 is unbounded when a > 0, undefined when a may be 0
        return Interval(INF, INF) if (a.lo > 0 or a.lo_open) else None
    if a.hi == 0:
        return Interval(0.0, 0.0)
    lo = 0.0 if b.hi == INF else a.lo / b.hi
    hi = INF if b.lo == 0 or a.hi == INF else a.hi / b.lo
    return Interval(lo, hi, a.lo_open or b.hi_open, hi == INF or a.hi_open or b.lo_open)


def decide(span: Interval, op: str, threshold: float) -> bool | None:
    """True when every value in the interval meets `op threshold`, False when none does, else None."""
    t, lo, hi = threshold, span.lo, span.hi
    if op == ">=":
        return True if lo >= t else False if (hi < t or (hi == t and span.hi_open)) else None
    if op == ">":
        return True if (lo > t or (lo == t and span.lo_open)) else False if hi <= t else None
    if op == "<=":
        return True if hi <= t else False if (lo > t or (lo == t and span.lo_open)) else None
    if op == "<":
        return True if (hi < t or (hi == t and span.hi_open)) else False if lo >= t else None
    if op == "==":
        if span.exact:
            return lo == t
        outside = t < lo or t > hi or (t == lo and span.lo_open) or (t == hi and span.hi_open)
        return False if outside else None
    raise ValueError(f"unknown operator {op!r}")


def describe(value, number=lambda v: f"{v:.4g}") -> str:
    """"< 150", ">= 900", "150..225", "inf", or the number."""
    if not isinstance(value, dict):
        return number(value)
    censor = value.get("censor")
    if censor == "infinite":
        return "inf"
    if censor == "between":
        return f"{number(value['low'])}..{number(value['high'])}"
    sign = {"lt": "< ", "le": "<= ", "gt": "> ", "ge": ">= "}.get(censor, "")
    return sign + number(value["value"])
