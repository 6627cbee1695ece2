"""`harness bench`'s arithmetic and verdicts: medians of alternated measurements, a ratio against the
spec's bound, and nothing unmeasured ever counted as met."""

import pytest

from harness import bench
from harness.record import BenchRun

HOT = {"fast": "cache_aside", "floor": "noop", "min_ratio": 0.6, "max_load_ratio": 1.1}


def target(variant, rps, cpu, rep=1, **kw):
    return {"side": "target", "variant": variant, "repetition": rep, "requests": int(rps * 10), "failed": 0,
            "requests_per_s": rps, "target_cpu_us": cpu, **kw}


def load(which, cpu, rep=1, **kw):
    return {"side": "load", "locust": which, "repetition": rep, "requests": 80_000, "failed": 0,
            "requests_per_s": 8000.0, "load_cpu_us": cpu, **kw}


def run_of(measurements, exporter_port=19646):
    return bench.conclude(BenchRun(kind="bench", run_id="r", module="scaling_reads", hot_path=HOT,
                                   measurements=measurements, exporter_port=exporter_port))


def test_ratios_are_of_medians_and_judged_against_the_spec():
    ms = [target("noop", 7800, 128, 1), target("cache_aside", 5000, 197, 1), target("noop", 7700, 130, 2),
          target("cache_aside", 5100, 196, 2), target("noop", 9000, 110, 3), target("cache_aside", 4900, 199, 3),
          load("bare", 114), load("harness", 121), load("bare", 115, 2), load("harness", 120, 2)]
    run = run_of(ms)
    assert run.target["medians"] == {"cache_aside": 5000, "noop": 7800}
    assert run.target["ratio"] == pytest.approx(5000 / 7800, abs=1e-3) and run.target["status"] == "met"
    assert run.target["cpu_ratio"] == pytest.approx(197 / 128, abs=1e-3)
    assert run.load["ratio"] == pytest.approx(120.5 / 114.5, abs=1e-3) and run.load["status"] == "met"
    assert run.passed is True


def test_a_ratio_past_its_bound_is_missed():
    run = run_of([target("noop", 7800, 128), target("cache_aside", 3900, 255), load("bare", 115), load("harness", 133)])
    assert (run.target["status"], run.load["status"], run.passed) == ("missed", "missed", False)
    assert run.target["ratio"] == pytest.approx(0.5) and run.load["ratio"] == pytest.approx(133 / 115, abs=1e-3)


@pytest.mark.parametrize("broken", [
    {"failed": 12},  # responses that were not 2xx
    {"requests": 0, "requests_per_s": 0.0},  # nothing answered in the window
    {"error": "the load generator exited 1 during the warm-up"},
])
def test_a_broken_measurement_makes_its_ratio_unmeasured_never_met(broken):
    ms = [target("noop", 7800, 128), target("cache_aside", 7000, 140, **broken), load("bare", 115),
          load("harness", 116, **broken)]
    run = run_of(ms)
    assert run.target["status"] == "unmeasured" and run.load["status"] == "unmeasured"
    assert "cache_aside rep 1" in run.target["reason"] and run.passed is False


def test_a_missing_side_or_exporter_off_is_unmeasured():
    run = run_of([target("noop", 7800, 128), load("bare", 115), load("harness", 116)], exporter_port=0)
    assert run.target["status"] == "unmeasured" and "never measured" in run.target["reason"]
    assert run.load["status"] == "unmeasured" and "exporter was off" in run.load["reason"]


def test_window_arithmetic():
    m = bench.window({"ok": 1000, "other": 5, "cpu_s": 10.0}, {"ok": 11_000, "other": 5, "cpu_s": 11.5}, 2.0)
    assert (m["requests"], m["failed"], m["requests_per_s"], m["target_cpu_us"]) == (10_000, 0, 5000.0, 150.0)
    nothing = bench.window({"ok": 5, "other": 0, "cpu_s": 1}, {"ok": 5, "other": 3, "cpu_s": 1}, 1.0)
    assert nothing["target_cpu_us"] is None and nothing["failed"] == 3


def test_wrk_output_and_script():
    out = ("Running 10s test @ http://127.0.0.1:18101\n  Requests/sec:   5066.12\n  Non-2xx or 3xx responses: 7\n"
           "  Socket errors: connect 0, read 2, write 0, timeout 1\n")
    assert bench.parse_wrk(out) == {"requests_per_s": 5066.12, "non_2xx": 7, "socket_errors": 3}
    script = bench.wrk_script("/noop/products/", "", 100)
    assert '"/noop/products/" .. ((n % 100) + 1) .. ""' in script


def test_options_are_checked():
    assert bench.Options().problems() == []
    problems = bench.Options(duration_s=1, warmup_s=0, connections=0, users=5000, repeat=0).problems()
    assert len(problems) == 5 and problems[0].startswith("--duration")


def test_the_verdict_line_says_ratio_medians_bound_and_status():
    run = run_of([target("noop", 7724, 129), target("cache_aside", 5009, 199), load("bare", 114), load("harness", 121)])
    line = bench.verdict_line("fast path", run.target)
    assert line == "fast path: 0.65x (cache_aside 5,009.0 / noop 7,724.0, medians; target >= 0.6): MET"
    assert bench.verdict_line("load", run_of([]).load).endswith("UNMEASURED (a side was never measured)")
