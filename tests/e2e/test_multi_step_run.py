"""A short real `harness run multi_step` (steady, 3 s windows, naive and the saga): both ran and the steady claims are
decided, naive's half-done orders are a finding that does not fail the run while the safe variants are
clean, the server metrics are measured, and every dashboard panel returns data. The faults (a coordinator
SIGKILLed after PREPARE, then recovery) are tested on the real clusters in
tests/integration/test_multi_step_flows.py; `harness run multi_step` plays them in full."""

import json
import os
import subprocess
import sys

import pytest
from grafana import panels_without_data

from harness.modules import dashboard, get_module

pytestmark = pytest.mark.e2e
SPEC = get_module("multi_step")
RAN = ("naive", "saga_orchestrated")  # two_phase's flows are tested on the real clusters (integration)


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "multi_step", "--duration", "3", "--warmup",
                           "1", "--no-fail", "--scenarios", "steady", "--variants", *RAN], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "HARNESS_RESULTS_DIR": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / "multi_step").iterdir()
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_every_variant_ran_and_the_steady_claims_are_decided(short_run):
    run, _ = short_run
    assert set(run["summary"]["steady"]) == set(RAN)
    claims = {c["id"]: c for c in run["claims"]}
    for claim in SPEC.claims:
        ran = claim.scenario == "steady" and set(claim.variants) <= set(RAN)
        expected = ("held", "failed", "invalid") if ran else ("not run",)
        assert claims[claim.id]["status"] in expected, claims[claim.id]


def test_naives_half_done_orders_are_a_finding_and_the_safe_variants_are_whole(short_run):
    run, _ = short_run
    rows = {(r["name"], r["variant"]): r for r in run["invariants"]}
    assert not rows[("half_done", "naive")]["enforced"]
    for variant in ("saga_orchestrated",):
        assert all(rows[(name, variant)]["passed"] for name in ("half_done", "money_conserved", "stock_conserved",
                                                                 "prepared_left")), rows
    assert rows[("money_conserved", "naive")]["passed"], "naive keeps the money: captured for failed orders"


def test_server_metrics_are_measured(short_run):
    run, _ = short_run
    steady = run["summary"]["steady"]
    assert all(steady[v]["steps_per_order"] >= 3 for v in RAN), steady
    assert steady["saga_orchestrated"]["order_final_s"] > 0


def test_every_dashboard_panel_returns_data(short_run):
    run, _ = short_run
    start, end = run["phases"][0]["start"], run["phases"][-1]["end"] + 2
    empty = panels_without_data(dashboard(SPEC), start, end)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
