"""A short real `harness run scaling_writes` through the console script: results complete, invariants
checked in every phase (the queued one after the consumer drained), with a database stall among them,
and every dashboard panel (and annotation) returns data from Prometheus. Whether a claim holds on this
machine is what the full run says."""

import json
import os
import subprocess
import sys

import pytest
from grafana import dashboard_problems, panels_without_data

from harness.modules import dashboard, get_module

pytestmark = pytest.mark.e2e
SPEC = get_module("scaling_writes")


@pytest.fixture(scope="module")
def short_run_dir(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "scaling_writes", "--scenarios", "fixed_rate",
                           "db_stall",
                           "--duration", "4", "--warmup", "1", "--repeat", "1", "--no-fail"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / "scaling_writes").iterdir()
    return run_dir


@pytest.fixture(scope="module")
def short_run(short_run_dir):
    return json.loads((short_run_dir / "run.json").read_text())


def test_every_phase_checked_its_invariants(short_run):
    assert [p["variant"] for p in short_run["phases"]] == ["direct", "batched", "queued"] * 2
    assert [f["service"] for f in short_run["faults"]] == ["postgres"] * 3  # the stall, so its annotation has data
    for phase in short_run["phases"]:
        names = {i["name"]: i["passed"] for i in phase["invariants"]}
        assert names == {"lost_events": True, "duplicate_events": True, "phantom_events": True}, phase["invariants"]
        assert phase["requests"] > 0


def test_every_dashboard_panel_returns_data(short_run, short_run_dir):
    start, end = short_run["phases"][0]["start"], short_run["phases"][-1]["end"] + 2
    empty = panels_without_data(dashboard(SPEC), start, end, faults=True)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
    assert not dashboard_problems(short_run_dir, dashboard(SPEC))  # the report drew them, or listed why not
