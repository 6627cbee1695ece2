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

A claim can compare two ratios: with `against`, "pattern p99_ms / naive p99_ms >= 1 x pattern p50_ms /
naive p50_ms" (the tail improves least). Its sentence states its threshold in words (`threshold_phrase`:
"at most 0.75x", "at least 0.99", "exactly 0"), and the spec test holds every sentence to it.

A claim about something that must happen first (a backlog to catch up on, a forged request to refuse)
names the metric that counts it (`attempts`): when it is 0 or missing for a variant the claim reads,
the claim is unmeasured, never held on nothing.

A claim that restates an enforced invariant or holds by construction is a demonstration (`demonstration`
says why): checked like any claim, counted apart, never evidence for the pattern; a failed one still fails
the run, since then the harness or the target is broken.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass

from harness import censored

OPERATORS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}
HELD, FAILED, UNMEASURED, NOT_RUN, INVALID = "held", "failed", "unmeasured", "not run", "invalid"
STATUSES = (HELD, FAILED, UNMEASURED, NOT_RUN, INVALID)
FAILING = frozenset({FAILED, UNMEASURED, INVALID})


OP_WORDS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than", "==": "exactly"}


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
    against: str | None = None  # a second metric: metric's ratio to the baseline is compared with this one's
    demonstration: str = ""  # why it is no evidence (restates an enforced invariant, holds by construction)
    attempts: str | None = None  # a metric counting what the claim speaks of (backlogs, bad completes tried)
    baseline_scenario: str | None = None  # the baseline's group when it is another one (same variant, 1 vs 2 workers)

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"claim {self.id}: op must be one of {', '.join(OPERATORS)}, got {self.op!r}")
        if self.baseline is not None and self.threshold <= 0:
            raise ValueError(f"claim {self.id}: a comparative threshold must be > 0, got {self.threshold}")
        if self.baseline_scenario is not None and self.baseline is None:
            raise ValueError(f"claim {self.id}: `baseline_scenario` is where the baseline is read; name the baseline")
        if self.against is not None and self.baseline is None:
            raise ValueError(f"claim {self.id}: `against` compares two ratios to a baseline; name the baseline")

    @property
    def expression(self) -> str:
        if self.baseline is None:
            return f"{self.variant} {self.metric} {self.op} {self.threshold:g}"
        if self.baseline_scenario is not None:
            return (f"{self.variant} {self.metric} {self.op} {self.threshold:g} x {self.baseline} {self.metric} "
                    f"in {self.baseline_scenario}")
        if self.against is not None:
            return (f"{self.variant} {self.metric} / {self.baseline} {self.metric} {self.op} {self.threshold:g} x "
                    f"{self.variant} {self.against} / {self.baseline} {self.against}")
        where = f" in {self.baseline_scenario}" if self.baseline_scenario else ""
        return f"{self.variant} {self.metric} {self.op} {self.threshold:g} x {self.baseline} {self.metric}{where}"

    @property
    def threshold_phrase(self) -> str:
        """The operator and threshold as the sentence must say them: "at most 0.75x", "at least 1,000"."""
        t = self.threshold
        number = f"{int(t):,}" if float(t).is_integer() else f"{t:g}"
        return f"{OP_WORDS[self.op]} {number}{'x' if self.baseline is not None else ''}"

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
    demonstration: str = ""  # why this is no evidence; empty for a claim

    @property
    def passed(self) -> bool:
        return self.status == HELD

    def to_dict(self) -> dict:
        return asdict(self)


def _show(value) -> str:
    return censored.describe(value)


def _ratio(group: dict, claim: Claim, metric: str, base_group: dict | None = None):
    """(measured, baseline, ratio interval) of `variant metric / baseline metric`, or (.., .., why not)."""
    base_group = group if base_group is None else base_group
    measured, base = group[claim.variant].get(metric), base_group[claim.baseline].get(metric)
    span, base_span = censored.interval(measured), censored.interval(base)
    if span is None:
        return measured, base, f"{claim.variant} {metric} has no value in {claim.scenario}"
    if base_span is None:
        return measured, base, f"{claim.baseline} {metric} has no value in {claim.baseline_scenario or claim.scenario}"
    ratio = censored.ratio(span, base_span)
    if ratio is None:
        return measured, base, (f"{claim.variant} {metric} {_show(measured)} / {claim.baseline} {_show(base)}: "
                                "0/0 is no ratio")
    return measured, base, ratio


def _ratio_text(span: censored.Interval) -> str:
    return censored.describe(censored.value_of(span), lambda v: f"{v:.3g}")


def check(claim: Claim, summary: dict, invalid: dict[tuple[str, str], list[str]] | None = None,
          not_run: dict[str, str] | None = None) -> Verdict:
    """Check one claim against a run summary {group: {variant: {metric: value}}}.

    `invalid` maps (group, variant) to the reasons its phases cannot be trusted (over budget);
    `not_run` maps a scenario left out of the run to why (a limit this machine cannot set).
    """

    def verdict(status: str, detail: str, measured=None, baseline=None, ratio=None) -> Verdict:
        return Verdict(claim.id, claim.sentence, claim.expression, claim.scenario, status, measured, baseline,
                       ratio, claim.threshold, detail, claim.demonstration)

    def decided(span: censored.Interval, detail: str, measured, baseline=None, ratio=None) -> Verdict:
        held = censored.decide(span, claim.op, claim.threshold)
        if held is None:
            bounds = "the bound does" if claim.baseline is None else "the bounds do"
            return verdict(UNMEASURED, f"{detail}: {bounds} not decide it", measured, baseline, ratio)
        return verdict(HELD if held else FAILED, detail, measured, baseline, ratio)

    base_scenario = claim.baseline_scenario or claim.scenario
    group, base_group = summary.get(claim.scenario), summary.get(base_scenario)
    for name, found in ((claim.scenario, group), (base_scenario, base_group)):
        if found is None:
            why = (not_run or {}).get(name.partition(".")[0])
            return verdict(NOT_RUN, f"scenario {name} was not run here: {why}" if why else
                           f"scenario {name} was not part of this run")
    reads = [(claim.scenario, claim.variant), *([(base_scenario, claim.baseline)] if claim.baseline else [])]
    for scenario, variant in reads:
        if variant not in summary[scenario]:
            return verdict(NOT_RUN, f"variant {variant} was not run in scenario {scenario}")
    reasons = [r for key in reads for r in (invalid or {}).get(key, [])]
    if reasons:
        return verdict(INVALID, "; ".join(reasons))
    if claim.attempts is not None:
        for scenario, variant in reads:
            tried = summary[scenario][variant].get(claim.attempts)
            span = censored.interval(tried)
            if span is None or span.hi <= 0:
                return verdict(UNMEASURED, f"{variant} {claim.attempts} = {_show(tried) if span else 'no value'} in "
                               f"{scenario}: nothing the claim speaks of was tried, so nothing was measured")
    needs = f"needs {claim.op} {claim.threshold:g}"
    if claim.baseline is None:
        measured = group[claim.variant].get(claim.metric)
        span = censored.interval(measured)
        if span is None:
            return verdict(UNMEASURED, f"{claim.variant} {claim.metric} has no value in {claim.scenario}")
        return decided(span, f"{claim.variant} {claim.metric} = {_show(measured)} ({needs})", measured)
    measured, base, ratio_span = _ratio(group, claim, claim.metric, base_group)
    if isinstance(ratio_span, str):
        return verdict(UNMEASURED, ratio_span, measured, base)
    first = (f"{claim.variant} {claim.metric} {_show(measured)} = {_ratio_text(ratio_span)} x {claim.baseline} "
             f"{_show(base)}")
    if claim.against is None:
        return decided(ratio_span, f"{first} ({needs}x)", measured, base, censored.value_of(ratio_span))
    # two ratios: measured is the metric's ratio, baseline the other metric's, ratio the one over the other
    _, _, other_span = _ratio(group, claim, claim.against, base_group)
    first_ratio = censored.value_of(ratio_span)
    if isinstance(other_span, str):
        return verdict(UNMEASURED, f"{first}; {other_span}", first_ratio)
    second_ratio = censored.value_of(other_span)
    both = censored.ratio(ratio_span, other_span)
    second = (f"{claim.variant} {claim.against} {_show(group[claim.variant].get(claim.against))} = "
              f"{_ratio_text(other_span)} x {claim.baseline} {_show(base_group[claim.baseline].get(claim.against))}")
    if both is None:
        return verdict(UNMEASURED, f"{first}; {second}: 0/0 is no ratio", first_ratio, second_ratio)
    detail = f"{first}; {second}; the first ratio is {_ratio_text(both)} x the second ({needs}x)"
    return decided(both, detail, first_ratio, second_ratio, censored.value_of(both))


def check_all(claims, summary: dict, invalid: dict[tuple[str, str], list[str]] | None = None,
              not_run: dict[str, str] | None = None) -> list[Verdict]:
    return [check(claim, summary, invalid, not_run) for claim in claims]
