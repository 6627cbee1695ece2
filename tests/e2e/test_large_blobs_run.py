"""A short real `harness run large_blobs`: every variant ran, every claim of the run is decided, the
security checks ran against the real store, and every dashboard panel returns data from Prometheus.
Whether a claim holds on this machine is what the runs themselves say."""

import json
import os
import subprocess
import sys

import pytest
from grafana import dashboard_problems, panels_without_data

from harness.modules import dashboard, get_module

pytestmark = pytest.mark.e2e
SPEC = get_module("large_blobs")


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "large_blobs", "--duration", "3", "--warmup",
                           "1", "--repeat", "1", "--no-fail", "--scenarios", "upload_10mib", "multipart_resume",
                           "download", "security"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / "large_blobs").iterdir()
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_every_claim_of_the_run_is_decided(short_run):
    run, _ = short_run
    assert set(run["summary"]["upload_10mib"]) == {"proxy", "presigned"}
    for claim in run["claims"]:
        ran = claim["scenario"] in run["summary"] if "scenario" in claim else True
        assert claim["status"] != "unmeasured" or not ran, claim


def test_security_checks_ran_against_the_store(short_run):
    run, _ = short_run
    security = [r for r in run["invariants"] if r["name"].startswith("security_")]
    assert {r["name"] for r in security} == {i.name for i in SPEC.invariants if i.name.startswith("security_")}
    assert all("refused by the store" in r["detail"] or "NOT ENFORCED" in r["detail"] for r in security)


def test_every_dashboard_panel_returns_data(short_run):
    run, run_dir = short_run
    start, end = run["phases"][0]["start"], run["phases"][-1]["end"] + 2
    empty = panels_without_data(dashboard(SPEC), start, end)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
    assert not dashboard_problems(run_dir, dashboard(SPEC))  # the report drew them, or listed why not
