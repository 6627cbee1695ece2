"""The gate: which phases can be trusted, the claims' verdicts, and whether the run passed. Pure.

A phase over its scenario's error budget, or one whose declared fault did not happen, makes every
claim that reads its (group, variant) `invalid`, and the report says which phase and why. In a
sweep, failures under overload are how a rate breaks (harness/sweep.py), so they do not invalidate.
A run passes when no claim failed, is unmeasured or invalid, every enforced invariant held, and
nothing broke the run itself. An invariant a variant does not claim (a naive baseline) is a
finding: reported, never failing the run. A demonstration (a claim that restates an enforced invariant
or holds by construction) is counted apart from the claims: held, it is no evidence for the pattern;
failed, unmeasured or invalid, it fails the run like a claim, since the harness or the target is broken.
"""

from __future__ import annotations

from collections import Counter

from harness.claims import FAILING, STATUSES, check_all
from harness.faults import done
from harness.record import ClaimVerdict, Phase, Run, VariantSummary


def budget_problem(phase: Phase) -> str | None:
    """Why a phase is over its error budget, in words; None when it is within it."""
    ratio, budget = phase.failure_ratio, phase.error_budget
    if ratio is None or budget is None or ratio <= budget:
        return None
    attempts = (phase.requests or 0) + (phase.failures or 0)
    reasons = ", ".join(f"{reason} x{n:,}" for reason, n in sorted(phase.errors.items(), key=lambda e: -e[1])[:4])
    return (f"phase {phase.index} ({phase.group_name}/{phase.variant} rep {phase.repetition}): {ratio:.1%} of "
            f"{attempts:,} requests failed{f' ({reasons})' if reasons else ''}, over its {budget:.0%} error budget")


def fault_problems(phase: Phase) -> list[str]:
    return [f"phase {phase.index} ({phase.group_name}/{phase.variant}): fault {f.action} {f.service} did not "
            f"happen as declared: {f.error or 'no begin/end recorded'}"
            for f in phase.faults if not done(f.dump())]


def invalid_reads(phases: list[Phase]) -> dict[tuple[str, str], list[str]]:
    """(group, variant) -> reasons its measurements cannot be trusted."""
    invalid: dict[tuple[str, str], list[str]] = {}
    for phase in phases:
        problems = fault_problems(phase)
        if phase.step is None and (problem := budget_problem(phase)):
            problems.append(problem)
        if problems:
            invalid.setdefault((phase.group_name, phase.variant), []).extend(problems)
    return invalid


def verdicts(claims, summary: dict[str, dict[str, VariantSummary]], phases: list[Phase],
             not_run: dict[str, str] | None = None) -> list[ClaimVerdict]:
    return [ClaimVerdict.model_validate(v.to_dict())
            for v in check_all(claims, summary, invalid_reads(phases), not_run)]


def passed(run: Run) -> bool:
    claims_ok = all(c.status not in FAILING for c in run.claims)
    invariants_ok = all(i.passed or not i.enforced for i in run.invariants)
    return claims_ok and invariants_ok and not run.error


def tally(run: Run) -> str:
    """The run's counts, claims, invariants and demonstrations apart: "claims 9 held, 2 not run;
    30/30 invariants held; demonstrations 3 held" (no demonstrations part when there are none)."""

    def statuses(verdicts) -> str:
        counts = Counter(v.status for v in verdicts)
        return ", ".join(f"{counts[s]} {s}" for s in [*(s for s in STATUSES if counts[s]),
                                                       *(s for s in counts if s not in STATUSES)])

    claims = [c for c in run.claims if not c.demonstration]
    demonstrations = [c for c in run.claims if c.demonstration]
    held = sum(1 for i in run.invariants if i.passed)
    findings = sum(1 for i in run.invariants if i.status == "finding")
    found = f" ({findings} violated where the variant does not claim it: a finding)" if findings else ""
    text = f"claims {statuses(claims) or 'no claims'}; {held}/{len(run.invariants)} invariants held{found}"
    return text + (f"; demonstrations {statuses(demonstrations)}" if demonstrations else "")
