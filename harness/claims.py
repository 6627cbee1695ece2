"""Claims as data, and `check(claim, summary) -> Verdict`. Pure: no I/O, no services.

A claim is comparative, like a k6 threshold between two variants ("cache_aside p95_ms <= 0.5 x
direct p95_ms"), or absolute ("cache_aside stale_reads == 0"). It names the sentence of the
curriculum it makes checkable; the verdict carries the measured ratio to print beside it.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

OPERATORS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Claim:
    id: str
    sentence: str
    metric: str
    variant: str
    op: str
    threshold: float
    baseline: str | None = None
    scenario: str = "default"

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"claim {self.id}: op must be one of {', '.join(OPERATORS)}, got {self.op!r}")
        if self.baseline is not None and self.threshold <= 0:
            raise ValueError(f"claim {self.id}: a comparative threshold must be > 0, got {self.threshold}")

    @property
    def expression(self) -> str:
        if self.baseline is None:
            return f"{self.variant} {self.metric} {self.op} {self.threshold:g}"
        return f"{self.variant} {self.metric} {self.op} {self.threshold:g} x {self.baseline} {self.metric}"

    @property
    def variants(self) -> tuple[str, ...]:
        return (self.variant,) if self.baseline is None else (self.variant, self.baseline)


@dataclass(frozen=True)
class Verdict:
    id: str
    sentence: str
    expression: str
    scenario: str
    status: str  # pass | fail | skipped
    measured: float | None
    baseline: float | None
    ratio: float | None
    threshold: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict:
        return asdict(self)


def _value(summary: dict, scenario: str, variant: str, metric: str) -> float | None:
    value = summary.get(scenario, {}).get(variant, {}).get(metric)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def check(claim: Claim, summary: dict) -> Verdict:
    """Check one claim against a run summary: {scenario: {variant: {metric: value}}}."""

    def verdict(status: str, detail: str, measured=None, baseline=None, ratio=None) -> Verdict:
        return Verdict(claim.id, claim.sentence, claim.expression, claim.scenario, status, measured, baseline,
                       ratio, claim.threshold, detail)

    for variant in claim.variants:
        if variant not in summary.get(claim.scenario, {}):
            return verdict("skipped", f"variant {variant} was not run in scenario {claim.scenario}")
    measured = _value(summary, claim.scenario, claim.variant, claim.metric)
    if measured is None:
        return verdict("skipped", f"{claim.variant} {claim.metric} was not measured")
    compare = OPERATORS[claim.op]
    needs = f"needs {claim.op} {claim.threshold:g}"
    if claim.baseline is None:
        ok = compare(measured, claim.threshold)
        return verdict("pass" if ok else "fail", f"{claim.variant} {claim.metric} = {measured:.4g} ({needs})",
                       measured)
    base = _value(summary, claim.scenario, claim.baseline, claim.metric)
    if base is None:
        return verdict("skipped", f"{claim.baseline} {claim.metric} was not measured", measured)
    if base == 0:
        ratio = math.inf if measured > 0 else 1.0
    else:
        ratio = measured / base
    ok = compare(ratio, claim.threshold)
    detail = (f"{claim.variant} {claim.metric} {measured:.4g} = {ratio:.3g} x {claim.baseline} {base:.4g} "
              f"({needs}x)")
    return verdict("pass" if ok else "fail", detail, measured, base, ratio)


def check_all(claims: list[Claim], summary: dict) -> list[Verdict]:
    return [check(claim, summary) for claim in claims]
