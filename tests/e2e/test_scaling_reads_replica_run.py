"""A short real `harness run` of Scaling Reads' replica and edge phases through the console script:
read-your-writes over the real replica and reads through the real HTTP cache, with the clients' logs,
the replica's rows and the server metrics in run.json. This checks the mechanism; whether a claim
holds on this machine is what the runs themselves say."""

import re

import pytest
from grafana import panels_without_data
from test_run import harness_run

from harness.modules import dashboard, get_module

pytestmark = pytest.mark.e2e


def test_replica_ryw_and_the_edge_in_a_short_run(stack, tmp_path):
    done, run, run_dir = harness_run(tmp_path, "--scenarios", "ryw", "edge", "--variants", "replica_ryw",
                                     "http_cache", "--duration", "4", "--warmup", "1", "--repeat", "1",
                                     "--users", "8", "--no-fail")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [(p["scenario"], p["variant"]) for p in run["phases"]] == [("ryw", "replica_ryw"), ("edge", "http_cache")]
    invariants = {(i["scenario"], i["variant"], i["name"]): i for i in run["invariants"]}
    for key in (("ryw", "replica_ryw", "stale_reads"), ("ryw", "replica_ryw", "replica_converged"),
                ("edge", "http_cache", "edge_staleness")):
        assert invariants[key]["passed"] and invariants[key]["enforced"], invariants[key]
    assert "reads after the client's own write" in invariants["ryw", "replica_ryw", "stale_reads"]["detail"]
    ryw, edge = run["summary"]["ryw"]["replica_ryw"], run["summary"]["edge"]["http_cache"]
    assert ryw["primary_share"] is not None and ryw["replica_share"] > 0.5
    assert 0 < edge["origin_per_request"] < 1  # the edge answered some reads itself
    decided = {c["id"]: c["status"] for c in run["claims"]}
    assert decided["ryw_fresh"] in ("held", "failed") and decided["edge_origin"] in ("held", "failed")
    # the panels pinned to these variants (origin reads behind the cache, say) have data after their run
    start, end = run["phases"][0]["start"], run["phases"][-1]["end"] + 2
    empty = [panel for panel in panels_without_data(dashboard(get_module("scaling_reads")), start, end)
             if re.search(r'variant="(replica_ryw|http_cache)"', panel)]
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
