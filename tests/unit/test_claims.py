import pytest

from harness.claims import Claim, check, check_all

SUMMARY = {
    "ycsb": {
        "direct": {"rps": 500.0, "p95_ms": 100.0, "stale_reads": 0},
        "cache_aside": {"rps": 1200.0, "p95_ms": 40.0, "stale_reads": 2, "hit_ratio": None},
    }
}


def claim(**kw):
    base = dict(id="c", sentence="s", metric="rps", variant="cache_aside", op=">=", threshold=2.0,
                baseline="direct", scenario="ycsb")
    return Claim(**{**base, **kw})


def test_comparative_claim_passes_with_measured_ratio():
    v = check(claim(), SUMMARY)
    assert v.status == "pass"
    assert v.ratio == pytest.approx(2.4)
    assert (v.measured, v.baseline) == (1200.0, 500.0)
    assert "2.4 x direct" in v.detail


def test_comparative_claim_fails_when_ratio_misses_threshold():
    v = check(claim(metric="p95_ms", op="<=", threshold=0.3), SUMMARY)
    assert v.status == "fail"
    assert v.ratio == pytest.approx(0.4)


def test_absolute_claim():
    assert check(claim(metric="stale_reads", op="==", threshold=0, baseline=None), SUMMARY).status == "fail"
    v = check(claim(metric="stale_reads", variant="direct", op="==", threshold=0, baseline=None), SUMMARY)
    assert v.status == "pass" and v.ratio is None


def test_skipped_when_variant_not_run_or_metric_missing():
    assert check(claim(baseline="noop"), SUMMARY).status == "skipped"
    assert check(claim(scenario="stampede"), SUMMARY).status == "skipped"
    v = check(claim(metric="hit_ratio", op=">=", threshold=0.8, baseline=None), SUMMARY)
    assert v.status == "skipped" and "not measured" in v.detail


def test_zero_baseline_does_not_divide_by_zero():
    summary = {"ycsb": {"a": {"x": 3.0}, "b": {"x": 0.0}}}
    v = check(Claim("z", "s", "x", "a", "<=", 0.5, baseline="b", scenario="ycsb"), summary)
    assert v.status == "fail" and v.ratio == float("inf")


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
