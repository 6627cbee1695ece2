"""A short real `harness run contention`: results complete and consistent with the spec, the line plot of the
sweep drawn, every dashboard panel returns data from Prometheus, and naive's oversell is a finding that
does not fail the run. Whether a claim holds on this machine is what the runs themselves say."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grafana import dashboard_problems, panels_without_data

from harness.modules import dashboard, get_module

pytestmark = pytest.mark.e2e
SPEC = get_module("contention")
DECIDED = ("held", "failed")


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "contention", "--duration", "3", "--warmup",
                           "1", "--users", "16", "--no-fail", "--scenarios", "high", "seats_4", "paused_holder"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / "contention").iterdir()
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_every_variant_ran_and_every_claim_of_the_run_is_decided(short_run):
    run, _ = short_run
    assert set(run["summary"]["high"]) == set(SPEC.variant_names)
    claims = {c["id"]: c for c in run["claims"]}
    for claim in SPEC.claims:
        group = claim.scenario
        expected_decided = group in run["summary"] and all(v in run["summary"][group] for v in claim.variants)
        status = claims[claim.id]["status"]
        assert (status in (*DECIDED, "invalid")) if expected_decided else status == "not run", claims[claim.id]


def test_naive_oversell_is_a_finding_and_safe_variants_are_clean(short_run):
    run, _ = short_run
    rows = [r for r in run["invariants"] if r["name"] == "double_sold"]
    naive = [r for r in rows if r["variant"] == "naive"]
    assert naive and all(not r["enforced"] for r in naive)
    assert all(r["enforced"] and r["passed"] for r in rows if r["variant"] != "naive"), rows
    held = [r for r in run["invariants"] if r["name"] == "held_and_sold"]
    assert {r["variant"] for r in held} == {"redis_hold"}


def test_server_metrics_are_measured(short_run):
    run, _ = short_run
    high = run["summary"]["high"]
    assert high["optimistic"]["retries_per_success"] is not None
    assert high["pessimistic"]["lock_wait_s"] is not None
    assert high["redis_hold"]["claims_won"] > 0
    assert run["summary"]["paused_holder"]["redis_lock"]["stale_writes_rejected"] >= 1


def test_each_phase_records_the_knobs_it_ran_with(short_run):
    """paused_holder's stale writes come from its knobs, set by the load side and recorded per phase."""
    run, _ = short_run
    knobs = {p["scenario"]: p["knobs"] for p in run["phases"]}
    assert knobs["high"] == []
    assert knobs["paused_holder"] == [k.model_dump() for k in SPEC.scenario("paused_holder").knobs]


def test_the_contention_line_plot_is_drawn(short_run):
    run, run_dir = short_run
    assert run["presentation"]["line_plots"][0]["x"][0] == ["high", 1]
    assert (run_dir / "plots" / "lines_1.png").stat().st_size > 10_000
    assert "lines_1.png" in (run_dir / "report.md").read_text()


def test_every_dashboard_panel_returns_data(short_run):
    run, run_dir = short_run
    start, end = run["phases"][0]["start"], run["phases"][-1]["end"] + 2
    empty = panels_without_data(dashboard(SPEC), start, end)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
    assert not dashboard_problems(run_dir, dashboard(SPEC))  # the report drew them, or listed why not


def test_report_files_exist(short_run):
    _, run_dir = short_run
    assert all((run_dir / name).exists() for name in ("run.json", "report.md", "report.html"))
    assert Path(run_dir / "plots").is_dir()
