import pytest

from harness.loadgen.recorder import ExactRecorder, encode, new_histogram
from harness.prom import ratio, with_labels
from harness.summary import invariant_rows, summarize_run, timeline


def phase(index, variant, rps, p95, inv=0, scenario="ycsb", hit=None):
    return {"index": index, "scenario": scenario, "variant": variant, "requests": int(rps * 10), "failures": 1,
            "rps": rps, "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 2, "p999": None, "max": p95 * 3},
            "server": {"hit_ratio": hit}, "load_cpu_us_per_request": 100.0,
            "invariants": [{"name": "lost_writes", "value": inv, "expected": "== 0", "passed": inv == 0,
                            "detail": f"{inv} lost"}]}


def hdr(*values_ms):
    h = new_histogram()
    for v in values_ms:
        h.record_value(int(v * 1000))
    return encode(h)


def test_medians_over_repetitions_and_summed_invariants():
    phases = [phase(1, "a", 100, 10), phase(2, "b", 300, 2, hit=0.9), phase(3, "a", 200, 30, inv=2),
              phase(4, "b", 500, 4, hit=0.7), phase(5, "a", 150, 20)]
    hists = {p["index"]: hdr(p["latency_ms"]["p95"]) for p in phases}
    s = summarize_run(phases, hists)["ycsb"]
    assert list(s) == ["a", "b"]
    assert s["a"]["rps"] == 150 and s["a"]["p95_ms"] == 20 and s["a"]["repetitions"] == 3
    assert s["b"]["rps"] == 400 and s["b"]["hit_ratio"] == pytest.approx(0.8)
    assert s["a"]["hit_ratio"] is None and s["a"]["p999_ms"] is None
    assert s["a"]["lost_writes"] == 2 and s["b"]["lost_writes"] == 0
    assert s["a"]["failures"] == 3 and s["a"]["failure_ratio"] == pytest.approx(3 / 4500)
    assert s["a"]["merged"]["max"] == pytest.approx(30, rel=0.01)  # merged histogram, not a median
    rows = invariant_rows(phases)
    row_a = next(r for r in rows if r["variant"] == "a")
    assert row_a["value"] == 2 and row_a["passed"] is False and "2 lost" in row_a["detail"]


def test_failed_phase_is_left_out():
    phases = [phase(1, "a", 100, 10), {**phase(2, "a", 999, 999), "error": "boom"}]
    assert summarize_run(phases, {})["ycsb"]["a"]["rps"] == 100


def test_timeline_counts_completions_per_second():
    r = ExactRecorder()
    r.reset(measured_start=1002.0)
    for start, ms in ((1000.2, 100), (1000.5, 600), (1001.0, 10), (1003.9, 50)):
        r.record("GET /x", ms, start, failed=False)
    exact = {"start": 1000.1, **r.results()}
    assert timeline(exact) == [[0, 1], [1, 2], [3, 1]]  # warm-up seconds too, for the plot
    assert exact["requests"]["GET /x"]["count"] == 1


def test_prometheus_selector_helpers():
    assert with_labels("m", variant="a") == 'm{variant="a"}'
    assert with_labels('m{kind="read"}', module="x") == 'm{kind="read",module="x"}'
    with pytest.raises(ValueError):
        with_labels("rate(m[1m])", a="b")
    assert ratio(1, 4) == 0.25 and ratio(1, 0) is None and ratio(None, 3) is None
    assert ExactRecorder().results()["requests"]["Aggregated"]["count"] == 0


def sweep_phase(index, variant, rate, achieved, p99, dropped=0, rep=1):
    return {"index": index, "scenario": "sweep", "group": f"sweep@{rate:g}", "variant": variant, "rate": rate,
            "repetition": rep, "rps": achieved, "latency_ms": {"p99": p99}, "dropped": dropped, "model": "open"}


def test_curves_and_knees_from_a_sweep():
    from harness.summary import curves

    phases = [sweep_phase(1, "a", 100, 100, 20), sweep_phase(2, "b", 100, 99, 5),
              sweep_phase(3, "a", 200, 199, 80), sweep_phase(4, "b", 200, 198, 6),
              sweep_phase(5, "a", 400, 300, 900, dropped=40), sweep_phase(6, "b", 400, 396, 30),
              sweep_phase(7, "a", 800, 310, 2000, dropped=900), sweep_phase(8, "b", 800, 700, 400),
              {**sweep_phase(9, "b", 800, 1, 1), "error": "boom"}]
    result = curves(phases, bound_ms=100)
    assert list(result) == ["sweep"] and result["sweep"]["bound_ms"] == 100
    a, b = result["sweep"]["variants"]["a"], result["sweep"]["variants"]["b"]
    assert [p["rate"] for p in a["points"]] == [100, 200, 400, 800]
    assert a["knee_rate"] == 200  # 400/s missed the bound and dropped arrivals
    assert b["knee_rate"] == 400  # 800/s achieved only 700/s
    assert b["points"][-1] == {"rate": 800, "achieved": 700, "p99_ms": 400, "dropped": 0}


def test_a_single_rate_makes_no_curve_and_a_first_miss_no_knee():
    from harness.summary import curves

    single = [{**sweep_phase(1, "a", 100, 100, 20), "group": "fixed_rate", "scenario": "fixed_rate"}]
    assert curves(single, 100) == {}
    assert curves([sweep_phase(1, "a", 100, 80, 20), sweep_phase(2, "a", 200, 199, 20)], 100)[
        "sweep"]["variants"]["a"]["knee_rate"] is None
