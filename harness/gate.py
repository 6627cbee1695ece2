"""The gate: which phases can be trusted, the claims' verdicts, and whether the run passed. Pure.

A phase over its scenario's error budget, or one whose declared fault did not happen, makes every
claim that reads its (group, variant) `invalid`, and the report says which phase and why. In a
sweep, failures under overload are how a rate breaks (harness/sweep.py), so they do not invalidate.
A run passes when no claim failed, is unmeasured or invalid, every enforced invariant held, and
nothing broke the run itself. An invariant a variant does not claim (a naive baseline) is a
finding: reported, never failing the run.
"""

from __future__ import annotations

from harness.claims import FAILING, check_all
from harness.faults import done


def budget_problem(phase: dict) -> str | None:
    """Why a phase is over its error budget, in words; None when it is within it."""
    ratio, budget = phase.get("failure_ratio"), phase.get("error_budget")
    if ratio is None or budget is None or ratio <= budget:
        return None
    attempts = (phase.get("requests") or 0) + (phase.get("failures") or 0)
    errors = phase.get("errors") or {}
    reasons = ", ".join(f"{reason} x{n:,}" for reason, n in sorted(errors.items(), key=lambda e: -e[1])[:4])
    return (f"phase {phase['index']} ({phase.get('group') or phase['scenario']}/{phase['variant']} rep "
            f"{phase.get('repetition')}): {ratio:.1%} of {attempts:,} requests failed"
            f"{f' ({reasons})' if reasons else ''}, over its {budget:.0%} error budget")


def fault_problems(phase: dict) -> list[str]:
    return [f"phase {phase['index']} ({phase.get('group') or phase['scenario']}/{phase['variant']}): fault "
            f"{f['action']} {f['service']} did not happen as declared: {f.get('error') or 'no begin/end recorded'}"
            for f in phase.get("faults") or [] if not done(f)]


def invalid_reads(phases: list[dict]) -> dict[tuple[str, str], list[str]]:
    """(group, variant) -> reasons its measurements cannot be trusted."""
    invalid: dict[tuple[str, str], list[str]] = {}
    for phase in phases:
        problems = fault_problems(phase)
        if phase.get("step") is None and (problem := budget_problem(phase)):
            problems.append(problem)
        if problems:
            invalid.setdefault((phase.get("group") or phase["scenario"], phase["variant"]), []).extend(problems)
    return invalid


def verdicts(claims, summary: dict, phases: list[dict]) -> list[dict]:
    return [v.to_dict() for v in check_all(claims, summary, invalid_reads(phases))]


def passed(run: dict) -> bool:
    claims_ok = all(c.get("status") not in FAILING for c in run.get("claims") or [])
    invariants_ok = all(i.get("passed") or not i.get("enforced", True) for i in run.get("invariants") or [])
    return claims_ok and invariants_ok and not run.get("error")
