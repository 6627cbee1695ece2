"""The open model's mechanism against a real target: counts that add up, exact histograms of several
workers merged by addition, dropped arrivals counted, schedule lag recorded, and a SIGSTOP stall
visible in the latency timed from intended starts.

No timed asserts: how fast this machine serves is a benchmark (`harness run scaling_reads
--scenarios fixed_rate stall`, claims stall_open / stall_closed), not a test. Synchronisation waits
on the run's own started marker, never on a guessed sleep.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.loadgen.recorder import decode
from harness.modules import get_module, locustfile

pytestmark = pytest.mark.e2e

LOCUSTFILE = locustfile(get_module("scaling_reads"))
STALL_S = 2.0


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def locust(tmp_path: Path, name: str, *args: str, during=None) -> dict:
    """One headless Locust run of the noop variant (its latency is pure framework, so a stall stands out).
    `during(started)` runs once the test has started, with the started marker's times."""
    out, started_file = tmp_path / f"{name}.json", tmp_path / f"{name}.started.json"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--variant", "noop",
               "--scenario", "ycsb", "--results-file", str(out), "--started-file", str(started_file),
               "--only-summary", "--loglevel", "WARNING", "--no-stack", "--exit-code-on-error", "0", *args]
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        if during is not None:
            started = wait_for(lambda: started_file.exists() and json.loads(started_file.read_text()), 60,
                               "the started marker")
            during(started)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and out.exists(), output[-3000:]
    result = json.loads(out.read_text())
    assert result["start"] <= result["measured_start"] < result["end"]
    return result


def assert_arrivals_accounted(result: dict, users: int) -> None:
    """Every measured arrival was served (successfully or not), dropped, or still queued or in flight
    when the run stopped (at most one per user); none is silently lost."""
    total = result["requests"]["Aggregated"]
    served = total["count"] + total["failures"]
    unaccounted = result["arrivals"] - served - result["dropped"]
    assert 0 <= unaccounted <= users, (result["arrivals"], served, result["dropped"])


def test_open_model_counts_add_up(tmp_path, stack):
    users = 50
    result = locust(tmp_path, "rate", "-u", str(users), "-r", str(users), "-t", "8s", "--warmup", "2",
                    "--rate", "150")
    total = result["requests"]["Aggregated"]
    assert result["model"] == "open" and result["rate"] == 150 and total["count"] > 0
    assert_arrivals_accounted(result, users)
    # each served arrival recorded its schedule lag (arrivals picked up just before stop may not finish)
    assert total["count"] <= result["schedule_lag_ms"]["count"] <= total["count"] + total["failures"] + users
    assert result["service"]["Aggregated"]["count"] == total["count"]
    assert decode(total["hdr"]).get_total_count() == total["count"]
    assert sum(result["completions_per_second"].values()) >= total["count"] + total["failures"]


def test_arrivals_without_a_free_user_are_dropped_and_counted(tmp_path, stack):
    result = locust(tmp_path, "drops", "-u", "1", "-r", "1", "-t", "5s", "--warmup", "1", "--rate", "3000")
    assert result["dropped"] > 0
    assert_arrivals_accounted(result, users=1)


def test_two_worker_processes_add_their_histograms(tmp_path, stack):
    """The rate is split across workers; their exact histograms are added on the master, not averaged."""
    args = ("-u", "40", "-r", "40", "-t", "8s", "--warmup", "2", "--rate", "100")
    single = locust(tmp_path, "single", *args)
    split = locust(tmp_path, "split", "--processes", "2", *args)
    total = split["requests"]["Aggregated"]
    assert single["workers"] is None and len(split["workers"]) == 2
    assert all(count > 0 for count in split["workers"].values())  # each worker served a share
    assert sum(split["workers"].values()) == total["count"]  # merged = sum of the workers' counts
    assert decode(total["hdr"]).get_total_count() == total["count"]
    per_name = sum(r["count"] for name, r in split["requests"].items() if name != "Aggregated")
    assert per_name == total["count"]
    assert_arrivals_accounted(split, users=40)


def test_a_sigstop_stall_shows_in_the_open_models_latency(tmp_path, stack):
    """The target frozen for 2 s mid-window: requests whose arrival fell in the stall waited for it, and
    the open model times them from their intended start, so its max latency includes the stall."""

    def stall(started: dict) -> None:
        wait_for(lambda: time.time() >= started["measured_start"] + 1.0, 30, "the measured window")
        stack.fault_begin("scaling_reads", "stop")
        try:
            time.sleep(STALL_S)  # the stall's length itself, not a synchronisation
        finally:
            stack.fault_end("scaling_reads", "stop")

    result = locust(tmp_path, "stall", "-u", "600", "-r", "600", "-t", "10s", "--warmup", "2", "--rate", "200",
                    during=stall)
    total = result["requests"]["Aggregated"]
    print(f"open model, {STALL_S:g} s SIGSTOP: max {total['max']:.0f} ms, p99 {total['p99']:.0f} ms, "
          f"service max {result['service']['Aggregated']['max']:.0f} ms, dropped {result['dropped']}")
    assert total["max"] >= (STALL_S - 0.5) * 1000, total
    assert result["service"]["Aggregated"]["max"] >= (STALL_S - 0.5) * 1000  # the users did wait on the server
    assert_arrivals_accounted(result, users=600)
