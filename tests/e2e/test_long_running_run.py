"""A short real `harness run long_running` through the console script: the worker_crash scenario for pg_queue,
where the first worker of each queue is SIGKILLed mid-window and restarted. Every phase settles and checks its
invariants against the ledger (no accepted job lost, every keyed effect once), both faults happened, and
every dashboard panel (and annotation) returns data from Prometheus. Whether a claim holds on this machine
is what the full run says."""

import json
import os
import subprocess
import sys

import pytest
from grafana import panels_without_data

from harness.modules import dashboard, get_module

pytestmark = pytest.mark.e2e
SPEC = get_module("long_running")


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "long_running", "--scenarios", "worker_crash",
                           "--variants", "pg_queue", "--duration", "4", "--warmup", "1", "--repeat", "1", "--no-fail"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / "long_running").iterdir()
    return json.loads((run_dir / "run.json").read_text())


def test_every_phase_survived_its_worker_kill(short_run):
    assert [p["variant"] for p in short_run["phases"]] == ["pg_queue"]  # redis_queue's kill: the integration test
    for phase in short_run["phases"]:
        assert sorted(f["service"] for f in phase["faults"]) == [f"long_running_{queue}_worker_{n}"
                                                                 for queue in ("pg", "redis") for n in (1, 2)]
        assert all(f["begin"] and f["end"] and not f["error"] for f in phase["faults"]), phase["faults"]
        held = {i["name"]: i["passed"] for i in phase["invariants"] if i["enforced"]}
        assert held == {"lost_jobs": True, "effects_not_once": True, "phantom_jobs": True,
                        "dead_letters_mismatch": True}, phase["invariants"]
        assert phase["server"]["completion_rps"] > 0 and phase["server"]["enqueued"] > 0


def test_every_dashboard_panel_returns_data(short_run):
    start, end = short_run["phases"][0]["start"], short_run["phases"][-1]["end"] + 2
    empty = panels_without_data(dashboard(SPEC), start, end, faults=True)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
