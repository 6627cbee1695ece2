"""Two additions to the module contract, pure: a claim whose baseline is read in another scenario (the same
variant with 1 vs 2 workers), and a request's own rate and percentiles as metrics (a job's completion)."""

import pytest

from harness.claims import Claim, check
from harness.modules import get_module
from harness.spec import ModuleSpec, RequestMetric, Scenario, Variant
from harness.summary import request_metrics

SUMMARY = {"two": {"q": {"completion_rps": 30.0}}, "one": {"q": {"completion_rps": 16.0}}}


def scale(**kw):
    base = dict(id="scale", sentence="s", metric="completion_rps", variant="q", op=">=", threshold=1.5,
                baseline="q", scenario="two", baseline_scenario="one")
    return Claim(**{**base, **kw})


def test_a_baseline_in_another_scenario_decides_the_claim():
    verdict = check(scale(), SUMMARY)
    assert verdict.status == "held" and verdict.ratio == pytest.approx(30 / 16)
    assert (verdict.measured, verdict.baseline) == (30.0, 16.0)
    assert "in one" in scale().expression
    assert check(scale(threshold=2.0), SUMMARY).status == "failed"


def test_a_missing_or_invalid_baseline_scenario_never_passes():
    assert check(scale(), {"two": SUMMARY["two"]}).status == "not run"
    assert check(scale(), {**SUMMARY, "one": {"q": {"completion_rps": None}}}).status == "unmeasured"
    assert check(scale(), SUMMARY, invalid={("one", "q"): ["over budget"]}).status == "invalid"
    with pytest.raises(ValueError, match="name the baseline"):
        scale(baseline=None)


def spec(**kw):
    base = dict(id="m", title="M", port=18990, services=(), variants=(Variant(name="q", sentence="s"),),
                scenarios=(Scenario(name="one"), Scenario(name="two")),
                request_metrics=(RequestMetric(name="completion", request="job completed", label="job completion"),))
    return ModuleSpec(**{**base, **kw})


def test_the_spec_knows_request_metrics_and_checks_the_baseline_scenario():
    assert spec(claims=(scale(),)).metric_label("completion_p99_ms") == ("job completion p99 ms", "num")
    with pytest.raises(ValueError, match="baseline_scenario: unknown 'nowhere'"):
        spec(claims=(scale(baseline_scenario="nowhere"),))
    with pytest.raises(ValueError, match="metric: unknown 'elsewhere_rps'"):
        spec(claims=(scale(metric="elsewhere_rps"),))


def test_request_metrics_count_successes_over_the_window_and_none_when_nothing_succeeded():
    metric = RequestMetric(name="completion", request="job completed", label="job completion")
    exact = {"measured_start": 100.0, "first_start": 100.0, "last_completion": 110.0, "end": 110.0,
             "requests": {"job completed": {"count": 50, "p50": 200.0, "p95": 400.0, "p99": 450.0}}}
    assert request_metrics(exact, [metric]) == {"completion_rps": 5.0, "completion_p50_ms": 200.0,
                                               "completion_p95_ms": 400.0, "completion_p99_ms": 450.0}
    exact["requests"] = {"job completed": {"count": 0}}
    assert set(request_metrics(exact, [metric]).values()) == {None}


def test_a_rate_server_metric_is_one_counter_per_second_of_the_window():
    from harness.phase import server_metrics
    from harness.settings import Settings
    from harness.spec import ServerMetric

    class Prom:
        def increase(self, selector, start, end):
            return 40.0 if selector.startswith("jobs_total") else 100.0

    metric = ServerMetric(name="per_s", label="jobs/s", kind="rate", numerator="jobs_total")
    found = server_metrics(Prom(), spec(server_metrics=(metric,)), Settings(), "q", 10.0, 30.0)
    assert found["per_s"] == 2.0
    with pytest.raises(ValueError, match="only a ratio"):
        ServerMetric(name="per_s", label="jobs/s", kind="rate", numerator="a", denominator="b")


def test_long_running_declares_its_completion_metrics():
    assert "completion_rps" in get_module("long_running").request_metric_labels
