import pytest

from harness import censored
from harness.claims import Claim, check, check_all

SUMMARY = {
    "ycsb": {
        "direct": {"rps": 500.0, "p95_ms": 100.0, "stale_reads": 0, "errors_seen": 0.0},
        "cache_aside": {"rps": 1200.0, "p95_ms": 40.0, "stale_reads": 2, "hit_ratio": None, "errors_seen": 0.0},
    }
}


def claim(**kw):
    base = dict(id="c", sentence="s", metric="rps", variant="cache_aside", op=">=", threshold=2.0,
                baseline="direct", scenario="ycsb")
    return Claim(**{**base, **kw})


def test_comparative_claim_holds_with_measured_ratio():
    v = check(claim(), SUMMARY)
    assert v.status == "held" and v.passed
    assert v.ratio == pytest.approx(2.4)
    assert (v.measured, v.baseline) == (1200.0, 500.0)
    assert "2.4 x direct" in v.detail


def test_comparative_claim_fails_when_ratio_misses_threshold():
    v = check(claim(metric="p95_ms", op="<=", threshold=0.3), SUMMARY)
    assert v.status == "failed" and not v.passed
    assert v.ratio == pytest.approx(0.4)


def test_absolute_claim():
    assert check(claim(metric="stale_reads", op="==", threshold=0, baseline=None), SUMMARY).status == "failed"
    v = check(claim(metric="stale_reads", variant="direct", op="==", threshold=0, baseline=None), SUMMARY)
    assert v.status == "held" and v.ratio is None


def test_not_run_when_the_scenario_or_a_variant_was_not_in_the_run():
    v = check(claim(scenario="stampede"), SUMMARY)
    assert v.status == "not run" and "scenario stampede was not part of this run" in v.detail
    v = check(claim(baseline="noop"), SUMMARY)
    assert v.status == "not run" and "variant noop was not run" in v.detail


def test_unmeasured_when_the_scenario_ran_but_the_value_is_missing():
    v = check(claim(metric="hit_ratio", op=">=", threshold=0.8, baseline=None), SUMMARY)
    assert v.status == "unmeasured" and "cache_aside hit_ratio has no value in ycsb" in v.detail
    v = check(claim(metric="db_queries_per_read"), SUMMARY)  # a metric that stopped being emitted
    assert v.status == "unmeasured"
    v = check(claim(metric="rps"), {"ycsb": {"cache_aside": {"rps": 3.0}, "direct": {"rps": float("nan")}}})
    assert v.status == "unmeasured" and "direct rps has no value" in v.detail


def test_zero_over_zero_is_no_ratio():
    v = check(claim(metric="errors_seen", op="<=", threshold=0.5), SUMMARY)
    assert v.status == "unmeasured" and "0/0 is no ratio" in v.detail and v.ratio is None


def test_something_over_zero_is_unbounded_and_decides():
    summary = {"ycsb": {"a": {"x": 3.0}, "b": {"x": 0.0}}}
    v = check(Claim("z", "s", "x", "a", "<=", 0.5, baseline="b", scenario="ycsb"), summary)
    assert v.status == "failed" and v.ratio == censored.INF_VALUE
    assert check(Claim("z", "s", "x", "a", ">=", 2, baseline="b", scenario="ycsb"), summary).status == "held"


def test_invalid_when_a_phase_it_reads_was_over_budget():
    reasons = {("ycsb", "direct"): ["phase 3 (ycsb/direct rep 1): 50.0% of 100 requests failed, over its 1% budget"]}
    v = check(claim(), SUMMARY, reasons)
    assert v.status == "invalid" and "over its 1% budget" in v.detail and v.measured is None
    assert check(claim(baseline=None, variant="cache_aside", threshold=10), SUMMARY, reasons).status == "held"
    assert check(claim(scenario="stampede"), SUMMARY, reasons).status == "not run"  # not run wins


def knee_summary(pattern, naive):
    return {"sweep": {"cache_aside": {"knee_rate": pattern}, "direct": {"knee_rate": naive}}}


def knee_claim(op=">=", threshold=1.5):
    return claim(metric="knee_rate", op=op, threshold=threshold, scenario="sweep")


def test_censored_knees_decide_where_their_bounds_do():
    # cache_aside held every rate up to 900, direct held none from 150: the ratio is > 6
    v = check(knee_claim(), knee_summary(censored.ge(900), censored.lt(150)))
    assert v.status == "held" and v.ratio == {"value": 6.0, "censor": "gt"}
    assert "cache_aside knee_rate >= 900 = > 6 x direct < 150" in v.detail
    assert check(knee_claim(threshold=6), knee_summary(censored.ge(900), censored.lt(150))).status == "held"
    # an exact knee against a bound: 300 / (< 150) > 2
    assert check(knee_claim(), knee_summary(300.0, censored.lt(150))).status == "held"
    # the pattern's knee below the start rate while the baseline held 225: < 150/225, so it fails
    assert check(knee_claim(), knee_summary(censored.lt(150), 225.0)).status == "failed"
    # failing from the bound: (< 150) / 100 < 1.5 is decided even though the bound is open
    assert check(knee_claim(), knee_summary(censored.lt(150), 100.0)).status == "failed"


def test_two_caps_are_never_a_ratio():
    v = check(knee_claim(), knee_summary(censored.ge(900), censored.ge(900)))
    assert v.status == "unmeasured" and "the bounds do not decide it" in v.detail
    assert check(knee_claim(), knee_summary(censored.lt(150), censored.lt(150))).status == "unmeasured"
    # (>= 900) / 900: at least 1, maybe more; not enough to say >= 1.5
    assert check(knee_claim(), knee_summary(censored.ge(900), 900.0)).status == "unmeasured"


def test_absolute_claim_on_a_censored_value():
    summary = {"outage": {"cache_aside": {"recovery_s": censored.ge(4.0)}}}
    within = Claim("r", "s", "recovery_s", "cache_aside", "<=", 10, scenario="outage")
    assert check(within, summary).status == "unmeasured"  # >= 4 s: could be 5 or 50
    summary["outage"]["cache_aside"]["recovery_s"] = censored.ge(12.0)
    assert check(within, summary).status == "failed"  # at least 12 s: more than 10 for sure


def test_expression_and_validation():
    assert claim().expression == "cache_aside rps >= 2 x direct rps"
    assert claim(baseline=None, op="==", threshold=0).expression == "cache_aside rps == 0"
    with pytest.raises(ValueError, match="op must be one of"):
        claim(op="=>")
    with pytest.raises(ValueError, match="must be > 0"):
        claim(threshold=0)


def test_check_all_keeps_order_and_serializes():
    verdicts = check_all([claim(id="a"), claim(id="b", op="<=")], SUMMARY)
    assert [v.id for v in verdicts] == ["a", "b"]
    assert [v.passed for v in verdicts] == [True, False]
    assert verdicts[0].to_dict()["expression"] == "cache_aside rps >= 2 x direct rps"
    assert verdicts[1].to_dict()["status"] == "failed"


@pytest.mark.parametrize(("value", "op", "threshold", "decided"), [
    (censored.lt(150), "<", 150, True), (censored.lt(150), "<=", 149, None), (censored.lt(150), ">=", 150, False),
    (censored.ge(900), ">=", 900, True), (censored.ge(900), ">", 900, None), (censored.ge(900), "<", 900, False),
    (censored.ge(900), "==", 900, None), (censored.ge(900), "==", 10, False), (5.0, "==", 5, True),
])
def test_decide_from_bounds(value, op, threshold, decided):
    assert censored.decide(censored.interval(value), op, threshold) is decided


def test_median_carries_censoring():
    assert censored.median([300.0, 200.0, 250.0]) == 250.0
    assert censored.median([censored.lt(150), censored.lt(150)]) == censored.lt(150)
    assert censored.median([censored.lt(150), 300.0, censored.ge(900)]) == 300.0
    assert censored.median([censored.ge(300), 200.0, censored.ge(250)]) == censored.ge(250)
    assert censored.median([300.0, censored.ge(900)]) == censored.ge(600)  # at least the midpoint
    assert censored.median([censored.lt(500), censored.ge(100), 300.0]) == {"low": 100, "high": 500,
                                                                            "censor": "between"}
    assert censored.median([None, None]) is None
    assert censored.describe(censored.lt(150)) == "< 150" and censored.describe(censored.ge(900)) == ">= 900"


def tail_claim(**kw):
    """The tail improves least: cache_aside's p99 ratio to direct at least its p50 ratio."""
    return claim(**{"id": "tail", "metric": "p99_ms", "against": "p50_ms", "op": ">=", "threshold": 1.0, **kw})


def latencies(p50, p99):
    return {"ycsb": {"direct": {"p50_ms": 40.0, "p99_ms": 120.0}, "cache_aside": {"p50_ms": p50, "p99_ms": p99}}}


def test_two_ratios_hold_when_the_tail_improves_least():
    v = check(tail_claim(), latencies(p50=10.0, p99=90.0))  # p50 0.25x, p99 0.75x: the tail kept 3x more
    assert v.status == "held" and v.expression == "cache_aside p99_ms / direct p99_ms >= 1 x cache_aside p50_ms " \
                                                  "/ direct p50_ms"
    assert (v.measured, v.baseline) == (0.75, 0.25) and v.ratio == pytest.approx(3.0)
    assert "the first ratio is 3 x the second (needs >= 1x)" in v.detail


def test_two_ratios_fail_when_the_tail_improves_most():
    v = check(tail_claim(), latencies(p50=30.0, p99=30.0))  # p50 0.75x, p99 0.25x
    assert v.status == "failed" and v.ratio == pytest.approx(1 / 3)


def test_two_ratios_unmeasured_not_run_and_invalid_like_any_claim():
    missing = latencies(p50=10.0, p99=90.0)
    del missing["ycsb"]["direct"]["p50_ms"]
    v = check(tail_claim(), missing)
    assert v.status == "unmeasured" and "direct p50_ms has no value in ycsb" in v.detail
    zero = {"ycsb": {"direct": {"p50_ms": 0.0, "p99_ms": 120.0}, "cache_aside": {"p50_ms": 0.0, "p99_ms": 90.0}}}
    assert "0/0 is no ratio" in check(tail_claim(), zero).detail and check(tail_claim(), zero).status == "unmeasured"
    assert check(tail_claim(scenario="stampede"), missing).status == "not run"
    over = {("ycsb", "direct"): ["phase 1 (ycsb/direct rep 1): over its 1% error budget"]}
    assert check(tail_claim(), latencies(10.0, 90.0), over).status == "invalid"


def test_two_ratios_decide_from_censored_bounds_only_where_they_decide():
    knees = {"sweep": {"direct": {"knee_rate": 200.0, "rps": 100.0},
                       "cache_aside": {"knee_rate": censored.ge(900), "rps": 150.0}}}
    knee_vs_rps = claim(metric="knee_rate", against="rps", scenario="sweep", threshold=2.0)
    v = check(knee_vs_rps, knees)  # knee >= 4.5x, rps 1.5x: the knee moved >= 3x more than throughput
    assert v.status == "held" and v.ratio == {"value": 3.0, "censor": "ge"}
    assert check(claim(metric="knee_rate", against="rps", scenario="sweep", threshold=4.0), knees).status == \
        "unmeasured"


def test_a_ratio_of_ratios_needs_a_baseline():
    with pytest.raises(ValueError, match="name the baseline"):
        claim(baseline=None, against="p50_ms")


def test_a_demonstration_is_checked_like_a_claim_and_carries_why():
    why = "restates the enforced invariant stale_reads"
    held = check(claim(metric="stale_reads", variant="direct", op="==", threshold=0, baseline=None,
                       demonstration=why), SUMMARY)
    assert held.status == "held" and held.demonstration == why and held.to_dict()["demonstration"] == why
    failed = check(claim(metric="stale_reads", op="==", threshold=0, baseline=None, demonstration=why), SUMMARY)
    assert failed.status == "failed" and not failed.passed
    assert check(claim(), SUMMARY).demonstration == ""


@pytest.mark.parametrize(("kw", "phrase"), [
    ({"op": "<=", "threshold": 0.75}, "at most 0.75x"), ({"op": ">=", "threshold": 2.0}, "at least 2x"),
    ({"op": "==", "threshold": 0, "baseline": None}, "exactly 0"),
    ({"op": ">=", "threshold": 8 * 2**20, "baseline": None}, "at least 8,388,608"),
    ({"op": "<", "threshold": 0.5, "baseline": None}, "less than 0.5"),
    ({"op": ">", "threshold": 1.5}, "more than 1.5x"),
])
def test_threshold_phrase(kw, phrase):
    assert claim(**kw).threshold_phrase == phrase


def test_a_claim_on_nothing_tried_is_unmeasured_not_held():
    """`attempts` names what must have happened: 0 or missing is unmeasured, whatever the metric says."""
    quiet = {"crash": {"queued": {"catchup_s": 0.0, "backlogs": 0}}}
    held_on_nothing = claim(metric="catchup_s", variant="queued", op="<=", threshold=10, baseline=None,
                            scenario="crash")
    assert check(held_on_nothing, quiet).status == "held"  # without `attempts`: the hole this closes
    guarded = claim(metric="catchup_s", variant="queued", op="<=", threshold=10, baseline=None, scenario="crash",
                    attempts="backlogs")
    verdict = check(guarded, quiet)
    assert verdict.status == "unmeasured" and "nothing the claim speaks of was tried" in verdict.detail
    assert check(guarded, {"crash": {"queued": {"catchup_s": 0.0}}}).status == "unmeasured"
    assert check(guarded, {"crash": {"queued": {"catchup_s": 4.0, "backlogs": 1}}}).status == "held"
    assert check(guarded, {"crash": {"queued": {"catchup_s": 14.0, "backlogs": 1}}}).status == "failed"
