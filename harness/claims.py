"""Claims as data, and `check(claim, summary) -> Verdict`. Pure: no I/O, no services.

A claim is comparative, like a k6 threshold between two variants ("pattern p95_ms <= 0.5 x
naive p95_ms"), or absolute ("pattern lost_writes == 0"). It names the sentence of the
curriculum it makes checkable; the verdict carries the measured ratio to print beside it.

A verdict is one of:
- held / failed: the measured values decide it (censored values decide it from their bounds);
- unmeasured: its scenario and variants ran but a value is missing, 0/0, or its bounds do not
  decide it; this fails the run, since a gate must not pass on what it did not measure;
- not run: its scenario, or one of its variants, was not part of this run; does not fail it;
- invalid: a phase it reads was over its error budget (or its fault did not happen); fails the run.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass

from harness import censored

OPERATORS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}
HELD, FAILED, UNMEASURED, NOT_RUN, INVALID = "held", "failed", "unmeasured", "not run", "invalid"
STATUSES = (HELD, FAILED, UNMEASURED, NOT_RUN, INVALID)
FAILING = frozenset({FAILED, UNMEASURED, INVALID})


@dataclass(frozen=True)
class Claim:
    id: str
    sentence: str
    metric: str
    variant: str
    op: str
    threshold: float
    baseline: str | None = None
    scenario: str = "default"  # the summary group: "<scenario>" or "<scenario>.<load>"

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
    status: str  # one of STATUSES
    measured: float | dict | None  # a number, or a censored value ({"value": 150, "censor": "lt"})
    baseline: float | dict | None
    ratio: float | dict | None
    threshold: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == HELD

    def to_dict(self) -> dict:
        return asdict(self)


def _show(value) -> str:
    return censored.describe(value)


def check(claim: Claim, summary: dict, invalid: dict[tuple[str, str], list[str]] | None = None) -> Verdict:
    """Check one claim against a run summary {group: {variant: {metric: value}}}.

    `invalid` maps (group, variant) to the reasons its phases cannot be trusted (over budget).
    """

    def verdict(status: str, detail: str, measured=None, baseline=None, ratio=None) -> Verdict:
        return Verdict(claim.id, claim.sentence, claim.expression, claim.scenario, status, measured, baseline,
                       ratio, claim.threshold, detail)

    group = summary.get(claim.scenario)
    if group is None:
        return verdict(NOT_RUN, f"scenario {claim.scenario} was not part of this run")
    for variant in claim.variants:
        if variant not in group:
            return verdict(NOT_RUN, f"variant {variant} was not run in scenario {claim.scenario}")
    reasons = [r for v in claim.variants for r in (invalid or {}).get((claim.scenario, v), [])]
    if reasons:
        return verdict(INVALID, "; ".join(reasons))
    measured = group[claim.variant].get(claim.metric)
    span = censored.interval(measured)
    if span is None:
        return verdict(UNMEASURED, f"{claim.variant} {claim.metric} has no value in {claim.scenario}")
    needs = f"needs {claim.op} {claim.threshold:g}"
    if claim.baseline is None:
        decided = censored.decide(span, claim.op, claim.threshold)
        detail = f"{claim.variant} {claim.metric} = {_show(measured)} ({needs})"
        if decided is None:
            return verdict(UNMEASURED, f"{detail}: the bound does not decide it", measured)
        return verdict(HELD if decided else FAILED, detail, measured)
    base = group[claim.baseline].get(claim.metric)
    base_span = censored.interval(base)
    if base_span is None:
        return verdict(UNMEASURED, f"{claim.baseline} {claim.metric} has no value in {claim.scenario}", measured)
    ratio_span = censored.ratio(span, base_span)
    if ratio_span is None:
        return verdict(UNMEASURED, f"{claim.variant} {claim.metric} {_show(measured)} / {claim.baseline} "
                                   f"{_show(base)}: 0/0 is no ratio", measured, base)
    ratio = censored.value_of(ratio_span)
    detail = (f"{claim.variant} {claim.metric} {_show(measured)} = {censored.describe(ratio, lambda v: f'{v:.3g}')} x "
              f"{claim.baseline} {_show(base)} ({needs}x)")
    decided = censored.decide(ratio_span, claim.op, claim.threshold)
    if decided is None:
        return verdict(UNMEASURED, f"{detail}: the bounds do not decide it", measured, base, ratio)
    return verdict(HELD if decided else FAILED, detail, measured, base, ratio)


def check_all(claims, summary: dict, invalid: dict[tuple[str, str], list[str]] | None = None) -> list[Verdict]:
    return [check(claim, summary, invalid) for claim in claims]
