"""The open model against a real target: exact rates, dropped arrivals, and the classic stall test.

The stall test freezes the target (SIGSTOP) for 2 s in the middle of a run. Timed from each
arrival's intended start, the open model's tail shows the stall the way wrk2's arithmetic predicts:
requests arriving during a stall of S seconds in a window of W seconds wait up to S, so the share
waiting longer than x is (S - x) / W and p99 is about S - 0.01 W. The closed model, over a run
with the same stall, barely notices: its few users simply stop sending while the server is frozen.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.modules import get_module

pytestmark = pytest.mark.e2e

LOCUSTFILE = get_module("scaling_reads").locustfile
STALL_S = 2.0


def locust(tmp_path: Path, name: str, *args: str, stall_after_s: float | None = None, pid: int | None = None):
    """One headless Locust run of the noop variant (its latency is pure framework, so a stall stands out)."""
    out = tmp_path / f"{name}.json"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--variant", "noop",
               "--scenario", "ycsb", "--results-file", str(out), "--only-summary", "--loglevel", "WARNING",
               "--no-stack", "--exit-code-on-error", "0", *args]
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if stall_after_s is not None:
        time.sleep(stall_after_s)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(STALL_S)
        finally:
            os.kill(pid, signal.SIGCONT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and out.exists(), output[-3000:]
    return json.loads(out.read_text())


def window(result: dict) -> float:
    from harness.summary import exact_window

    return exact_window(result)


@pytest.fixture(scope="module")
def target_pid(stack):
    assert "scaling_reads" in stack.state, "the stall test needs the target process started by harness.stack"
    return stack.state["scaling_reads"]["pid"]


def test_fixed_rate_below_saturation_is_met_without_drops(tmp_path, stack):
    result = locust(tmp_path, "rate", "-u", "50", "-r", "50", "-t", "10s", "--warmup", "2", "--rate", "150")
    total = result["requests"]["Aggregated"]
    assert result["model"] == "open" and result["dropped"] == 0
    assert total["count"] / window(result) == pytest.approx(150, rel=0.02)
    assert result["arrivals"] == total["count"]
    assert result["schedule_lag_ms"]["count"] == pytest.approx(total["count"], abs=10)  # in flight at stop


def test_arrivals_without_a_free_user_are_dropped_and_counted(tmp_path, stack):
    result = locust(tmp_path, "drops", "-u", "1", "-r", "1", "-t", "6s", "--warmup", "1", "--rate", "3000")
    served = result["requests"]["Aggregated"]["count"]
    assert result["dropped"] > 0
    assert result["arrivals"] == pytest.approx(served + result["dropped"], abs=2)  # none silently lost


def test_open_model_shows_a_stall_that_the_closed_model_hides(tmp_path, target_pid):
    rate, duration, warmup = 200, 14, 2
    # Launch to test start takes about 1.5 s; the stall lands well inside the measured window.
    open_run = locust(tmp_path, "open", "-u", "600", "-r", "600", "-t", f"{duration}s", "--warmup", str(warmup),
                      "--rate", str(rate), stall_after_s=6.0, pid=target_pid)
    closed_run = locust(tmp_path, "closed", "-u", "8", "-r", "8", "-t", f"{duration}s", "--warmup", str(warmup),
                        stall_after_s=6.0, pid=target_pid)
    opened, closed = open_run["requests"]["Aggregated"], closed_run["requests"]["Aggregated"]
    predicted_p99_ms = (STALL_S - 0.01 * window(open_run)) * 1000
    report = (f"open p99 {opened['p99']:.0f} ms (wrk2 predicts {predicted_p99_ms:.0f}), p95 {opened['p95']:.0f}, "
              f"p50 {opened['p50']:.1f}; closed p99 {closed['p99']:.1f} ms, max {closed['max']:.0f} ms")
    print(report)
    assert open_run["dropped"] == 0, report
    assert opened["p99"] == pytest.approx(predicted_p99_ms, abs=400), report
    assert opened["p95"] > 500, report
    assert opened["p50"] < 100, report
    assert closed["max"] > 0.75 * STALL_S * 1000, report  # the stall did happen during the closed run
    assert closed["p99"] < 250, report  # ... yet its p99 does not show it


def test_two_worker_processes_match_one_process(tmp_path, stack):
    """The rate is split across workers; their exact histograms are added on the master, not averaged."""
    args = ("-u", "60", "-r", "60", "-t", "10s", "--warmup", "2", "--rate", "200")
    single = locust(tmp_path, "single", *args)
    split = locust(tmp_path, "split", "--processes", "2", *args)
    one, two = single["requests"]["Aggregated"], split["requests"]["Aggregated"]
    report = (f"1 process: {one['count']} requests, p50 {one['p50']:.2f} p90 {one['p90']:.2f} ms; "
              f"2 processes: {two['count']} requests {split['workers']}, p50 {two['p50']:.2f} p90 {two['p90']:.2f} ms")
    print(report)
    assert single["workers"] is None and len(split["workers"]) == 2, report
    assert sum(split["workers"].values()) == two["count"], report  # merged = sum of the workers' counts
    assert min(split["workers"].values()) > 0.4 * two["count"], report  # each worker served about half
    for result in (single, split):
        assert result["dropped"] == 0, report
        assert result["requests"]["Aggregated"]["count"] / window(result) == pytest.approx(200, rel=0.02), report
    for p in ("p50", "p90"):
        assert abs(one[p] - two[p]) <= max(1.0, 0.5 * one[p]), report
