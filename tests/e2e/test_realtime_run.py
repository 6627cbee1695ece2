"""A short real `harness run realtime` through the console script: every variant delivers messages with
their latency, the server metrics are read per variant, the sequence invariants are decided, and every
dashboard panel (the fault annotation too) returns data. Whether a claim holds on this machine is what
the runs themselves say."""

import json
import os
import subprocess
import sys

import pytest
from grafana import dashboard_problems, panels_without_data

from harness.modules import dashboard, get_module

pytestmark = pytest.mark.e2e
SPEC = get_module("realtime")


@pytest.fixture(scope="module")
def short_run_dir(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "realtime", "--scenarios", "steady",
                           "restart", "--duration", "8", "--warmup", "2", "--users", "20", "--no-fail"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / "realtime").iterdir()
    return run_dir


@pytest.fixture(scope="module")
def short_run(short_run_dir):
    return json.loads((short_run_dir / "run.json").read_text())


def test_every_variant_delivers_and_is_measured(short_run):
    phases = {p["variant"]: p for p in short_run["phases"] if p["scenario"] == "steady"}
    assert set(phases) == set(SPEC.variant_names)
    for variant, phase in phases.items():
        assert phase["requests"] > 0 and phase["latency_ms"]["p50"] > 0, variant
        assert phase["server"]["cpu_us_per_message"] > 0 and phase["server"]["requests_per_s"] is not None
        assert {i["name"] for i in phase["invariants"]} == {"lost_messages", "duplicate_messages"}
    assert phases["short_poll"]["server"]["requests_per_s"] > phases["sse"]["server"]["requests_per_s"]
    restart = {p["variant"]: p for p in short_run["phases"] if p["scenario"] == "restart"}
    assert restart["websocket"]["faults"] and restart["sse"]["faults"]


def test_every_dashboard_panel_returns_data(short_run, short_run_dir):
    start, end = short_run["phases"][0]["start"], short_run["phases"][-1]["end"] + 2
    empty = panels_without_data(dashboard(SPEC), start, end, faults=True)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
    assert not dashboard_problems(short_run_dir, dashboard(SPEC))  # the report drew them, or listed why not
