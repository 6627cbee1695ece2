import pytest

from harness import censored
from harness.loadgen.recorder import ExactRecorder, encode, new_histogram
from harness.prom import ratio, with_labels
from harness.record import Phase
from harness.summary import invariant_rows, phase_counts, summarize_run, timeline


def phase(index, variant, rps, p95, inv=0, scenario="ycsb", hit=None, errors=None, **extra) -> Phase:
    return Phase.model_validate({
            "index": index, "scenario": scenario, "group": scenario, "variant": variant, "repetition": index,
            "requests": int(rps * 10), "failures": 1, "errors": errors or {"503": 1},
            "rps": rps, "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 2, "p999": None, "max": p95 * 3},
            "server": {"hit_ratio": hit}, "load_cpu_us_per_request": 100.0,
            "invariants": [{"name": "lost_writes", "value": inv, "expected": "== 0", "passed": inv == 0,
                            "detail": f"{inv} lost", "enforced": True}], **extra})


def summaries(phases, histograms=None, curves=None) -> dict:
    """The run summary as run.json holds it."""
    return {group: {variant: s.dump() for variant, s in variants.items()}
            for group, variants in summarize_run(phases, histograms or {}, curves).items()}


def hdr(*values_ms):
    h = new_histogram()
    for v in values_ms:
        h.record_value(int(v * 1000))
    return encode(h)


def test_medians_over_repetitions_and_summed_failures_and_invariants():
    phases = [phase(1, "a", 100, 10), phase(2, "b", 300, 2, hit=0.9), phase(3, "a", 200, 30, inv=2),
              phase(4, "b", 500, 4, hit=0.7), phase(5, "a", 150, 20, errors={"ConnectionError": 1})]
    hists = {p.index: hdr(p.latency_ms["p95"]) for p in phases}
    s = summaries(phases, hists)["ycsb"]
    assert list(s) == ["a", "b"]
    assert s["a"]["rps"] == 150 and s["a"]["p95_ms"] == 20 and s["a"]["repetitions"] == 3
    assert s["b"]["rps"] == 400 and s["b"]["hit_ratio"] == pytest.approx(0.8)
    assert s["a"]["hit_ratio"] is None and s["a"]["p999_ms"] is None
    assert summarize_run(phases, hists)["ycsb"]["b"].rps == 400
    assert s["a"]["lost_writes"] == 2 and s["b"]["lost_writes"] == 0
    assert s["a"]["failures"] == 3 and s["a"]["failure_ratio"] == pytest.approx(3 / 4503)
    assert s["a"]["errors"] == {"503": 2, "ConnectionError": 1}
    assert s["a"]["max_ms"] == 90 and s["a"]["merged"]["max"] == pytest.approx(30, rel=0.01)
    rows = invariant_rows(phases)
    row_a = next(r for r in rows if r.variant == "a")
    assert row_a.value == 2 and row_a.passed is False and "2 lost" in row_a.detail
    assert row_a.enforced is True and row_a.scenario == "ycsb" and row_a.status == "violated"


def test_max_is_missing_when_nothing_was_measured_not_zero():
    nothing = dict.fromkeys(("p50", "p95", "p99", "p999", "max"))
    empty = phase(1, "a", 100, 10).model_copy(update={"latency_ms": nothing})
    assert summarize_run([empty], {})["ycsb"]["a"].max_ms is None


def test_fault_metrics_are_medians_with_censoring_carried():
    phases = [phase(1, "a", 100, 10, fault_availability=0.9, recovery_s=2.0),
              phase(2, "a", 100, 10, fault_availability=1.0, recovery_s=censored.ge(9.0)),
              phase(3, "a", 100, 10, fault_availability=0.95, recovery_s=censored.ge(9.0))]
    s = summaries(phases)["ycsb"]["a"]
    assert s["fault_availability"] == 0.95 and s["recovery_s"] == censored.ge(9.0)
    assert "recovery_s" not in summaries([phase(1, "a", 100, 10)])["ycsb"]["a"]


def test_groups_and_sweeps():
    phases = [phase(1, "a", 100, 10, scenario="stall.open"), phase(2, "a", 100, 10, scenario="stall.closed")]
    assert list(summarize_run(phases, {})) == ["stall.open", "stall.closed"]
    swept = [phase(1, "a", 100, 10, scenario="sweep", step=0, rate=100)]
    curves = {"sweep": {"variants": {"a": {"knee_rate": censored.ge(100)}}}}
    assert summaries(swept, {}, curves)["sweep"]["a"] == {
        "repetitions": 1, "requests": 1000, "failures": 1, "failure_ratio": 1 / 1001, "knee_rate": censored.ge(100)}


def test_failed_phase_is_left_out():
    phases = [phase(1, "a", 100, 10), phase(2, "a", 999, 999, error="boom")]
    assert summarize_run(phases, {})["ycsb"]["a"].rps == 100


def test_timeline_and_counts_from_the_recorder():
    r = ExactRecorder()
    r.reset(measured_start=1002.0)
    for start, ms, failed in ((1000.2, 100, None), (1000.5, 600, None), (1001.0, 10, None), (1003.9, 50, None),
                              (1002.5, 20, "503")):
        r.record("GET /x", ms, start, failed=failed)
    exact = {"start": 1000.1, "measured_start": 1002.0, "end": 1004.0, **r.results()}
    assert timeline(exact) == [[0, 1, 0], [1, 2, 0], [2, 0, 1], [3, 1, 0]]  # warm-up seconds too, for the plot
    counts = phase_counts(exact)
    assert (counts["requests"], counts["failures"], counts["errors"]) == (1, 1, {"503": 1})
    assert counts["failure_ratio"] == 0.5


def test_prometheus_selector_helpers():
    assert with_labels("m", variant="a") == 'm{variant="a"}'
    assert with_labels('m{kind="read"}', module="x") == 'm{kind="read",module="x"}'
    with pytest.raises(ValueError):
        with_labels("rate(m[1m])", a="b")
    assert ratio(1, 4) == 0.25 and ratio(1, 0) is None and ratio(None, 3) is None and ratio(0, 0) is None
    assert ExactRecorder().results()["requests"]["Aggregated"]["count"] == 0
