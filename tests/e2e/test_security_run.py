"""A short real `harness run security` through the console script, one variant per kind of scenario: the
attack invariants are decided for an auth variant (plain JWT's acceptance after logout is the finding), good
and abusive traffic are recorded apart, the limiter's server metrics are read, the boundary probe is
measured, and every dashboard panel returns data. Whether a claim holds is what the full runs say."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grafana import panels_without_data

from harness.modules import dashboard, get_module
from harness.modules.security import ABUSER, GOOD

pytestmark = pytest.mark.e2e
SPEC = get_module("security")


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "security", "--scenarios", "auth_cost",
                           "abuse", "boundary", "--variants", "jwt", "token_bucket", "--duration", "3",
                           "--warmup", "1", "--no-fail"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / "security").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    run["dir"] = str(run_dir)
    return run


def phase(run: dict, scenario: str) -> dict:
    (found,) = [p for p in run["phases"] if p["scenario"] == scenario]
    return found


def test_attacks_traffic_and_limits_are_measured(short_run):
    auth = phase(short_run, "auth_cost")
    invariants = {i["name"]: i for i in auth["invariants"]}
    assert invariants["forged_accepted"]["value"] == 0 and invariants["escalation_accepted"]["value"] == 0
    assert invariants["revoked_accepted"]["value"] > 0 and not invariants["revoked_accepted"]["enforced"]
    abuse = phase(short_run, "abuse")
    assert abuse["server"]["abuser_admitted_per_s"] > 0 and abuse["server"]["good_refused_ratio"] is not None
    assert abuse["requests"] > 0
    boundary = phase(short_run, "boundary")
    assert boundary["server"]["peak_window_ratio"] >= 1.0
    exact = json.loads((Path(short_run["dir"]) / f"{abuse['csv_prefix']}.json").read_text())
    good, abuser = exact["requests"][GOOD]["count"], exact["requests"][ABUSER]["count"]
    assert 0 < good < abuser  # apart in the report, at their own rates (20/s and 50/s)


def test_every_dashboard_panel_returns_data(short_run):
    start, end = short_run["phases"][0]["start"], short_run["phases"][-1]["end"] + 2
    empty = panels_without_data(dashboard(SPEC), start, end)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
