"""A claim whose baseline is the same variant in another group (good clients with an abuser vs without):
the ratio reads each value from its own group; a missing group is not run, an invalid one makes it
invalid; the spec refuses a baseline group or variant it does not have."""

import pytest

from harness.claims import HELD, INVALID, NOT_RUN, Claim, check
from harness.modules.security import SPEC
from harness.spec import ModuleSpec

SUMMARY = {"calm": {"token_bucket": {"p99_ms": 20.0}}, "abuse": {"token_bucket": {"p99_ms": 50.0}}}


def under_abuse(threshold: float) -> Claim:
    return Claim("p99", f"In abuse, token_bucket's p99 is at most {threshold:g}x its p99 in calm.", "p99_ms",
                 "token_bucket", "<=", threshold, baseline="token_bucket", baseline_scenario="calm",
                 scenario="abuse")


def test_the_ratio_reads_each_value_from_its_own_group():
    held = check(under_abuse(3), SUMMARY)
    assert (held.status, held.measured, held.baseline, held.ratio) == (HELD, 50.0, 20.0, 2.5)
    assert check(under_abuse(2), SUMMARY).status == "failed"  # 2.5x is over 2x: read from calm, not abuse (1x)
    assert under_abuse(3).expression == "token_bucket p99_ms <= 3 x token_bucket p99_ms in calm"


def test_the_baseline_group_not_run_or_invalid_decides_nothing():
    assert check(under_abuse(3), {"abuse": SUMMARY["abuse"]}).status == NOT_RUN
    invalid = check(under_abuse(3), SUMMARY, {("calm", "token_bucket"): ["over budget"]})
    assert invalid.status == INVALID and "over budget" in invalid.detail


def test_validation():
    with pytest.raises(ValueError, match="name the baseline"):
        Claim("x", "x", "p99_ms", "token_bucket", "<=", 2, baseline_scenario="calm", scenario="abuse")
    data = SPEC.model_dump()
    broken = under_abuse(3)
    for group, problem in (("quiet", "baseline_scenario: unknown 'quiet'"),
                           ("auth_cost", "claims.p99.baseline: unknown 'token_bucket'")):
        data["claims"] = (Claim(**{**broken.__dict__, "baseline_scenario": group}),)
        with pytest.raises(ValueError, match=problem):
            ModuleSpec(**data)
