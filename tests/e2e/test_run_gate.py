"""The gate on the real stack: what it did not measure fails the run, a variant over its error budget
invalidates the claims that read it, and a fault (Redis killed mid-phase) is played, recorded and drawn.

(a) Unmeasured: `--scenarios consistency --variants cache_aside_lease -- --write-ratio 0`. With no
writes, the locustfile's stale_entries check has nothing to compare and reports no value, so the one
claim on that scenario (lease_consistent) cannot be measured: honest, and the only thing wrong with
the run. Before the gate it was "skipped" and the run passed.
(b) Error budget: a target of its own, started by a second embedded stack (its own port offset and
state dir) with HARNESS_TARGET_FAIL_VARIANT=direct and HARNESS_TARGET_FAIL_RATIO=0.5, so every other
request to /direct answers 503.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from harness import gate, record
from harness.modules import get_module, url
from harness.pids import alive
from harness.settings import get_settings
from harness.stack import Stack

pytestmark = pytest.mark.e2e
CLAIMS_READING_DIRECT = [c.id for c in get_module("scaling_reads").claims
                         if c.scenario == "ycsb" and "direct" in c.variants]


def harness(*args: str, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def only_run(results_dir: Path) -> tuple[dict, Path]:
    (run_dir,) = (results_dir / "scaling_reads").iterdir()
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_a_claim_whose_value_is_missing_fails_the_run_as_unmeasured(stack, tmp_path):
    env = {**os.environ, "HARNESS_RESULTS_DIR": str(tmp_path)}
    done = harness("run", "scaling_reads", "--scenarios", "consistency", "--variants", "cache_aside_lease",
                   "--duration", "3", "--warmup", "1", "--repeat", "1", "--", "--write-ratio", "0", env=env)
    run, run_dir = only_run(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    claims = {c["id"]: c for c in run["claims"]}
    lease = claims.pop("lease_consistent")
    assert lease["status"] == "unmeasured", lease
    assert lease["detail"] == "cache_aside_lease stale_entries has no value in consistency"
    assert {c["status"] for c in claims.values()} == {"not run"}  # nothing else could have failed the run
    assert run["phases"][0]["failures"] == 0 and not run["invariants"]
    assert run["passed"] is False and "unmeasured" in done.stdout
    assert "| unmeasured | lease_consistent |" in (run_dir / "report.md").read_text()


@pytest.fixture(scope="module")
def failing_stack(tmp_path_factory):
    """A second embedded stack whose target answers 503 to half of /direct; stopped at the end."""
    base = get_settings()
    root = tmp_path_factory.mktemp("failing")
    offset = base.port_offset + 300
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("HARNESS_") and (k.endswith("_PORT") or k == "HARNESS_TARGET_URLS"))}
    env.update(HARNESS_PORT_OFFSET=str(offset), HARNESS_STATE_DIR=str(root / "state"),
               HARNESS_RESULTS_DIR=str(root / "results"), HARNESS_LOADGEN_METRICS_PORT=str(
                   base.loadgen_metrics_port + 300),
               HARNESS_TARGET_FAIL_VARIANT="direct", HARNESS_TARGET_FAIL_RATIO="0.5",
               HARNESS_SCALING_READS_PRODUCTS="2000", HARNESS_SCALING_READS_REVIEWS="20000")
    yield env, root
    state = json.loads((root / "state" / "state.json").read_text()) if (root / "state" / "state.json").exists() else {}
    down = harness("down", env=env, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [e["pid"] for e in state.values() if alive(e["pid"], e.get("ticks"))]  # a zombie is gone


def test_a_variant_over_its_error_budget_invalidates_its_claims(failing_stack):
    env, root = failing_stack
    done = harness("run", "scaling_reads", "--scenarios", "ycsb", "--variants", "direct", "cache_aside",
                   "--duration", "3", "--warmup", "1", "--repeat", "1", "--users", "4", env=env)
    run, run_dir = only_run(root / "results")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    direct, cached = run["phases"]
    assert direct["variant"] == "direct" and direct["over_budget"] and direct["failure_ratio"] > 0.4
    assert set(direct["errors"]) == {"503"} and direct["errors"]["503"] == direct["failures"]
    assert direct["requests"] > 0  # successes only: latency and rps are over these
    assert not cached["over_budget"]
    claims = {c["id"]: c for c in run["claims"]}
    for claim in CLAIMS_READING_DIRECT:
        assert claims[claim]["status"] == "invalid", claims[claim]
        assert "over its 1% error budget" in claims[claim]["detail"] and "503 x" in claims[claim]["detail"]
    assert claims["hit_ratio"]["status"] in ("held", "failed")  # cache_aside alone: still decided
    report = (run_dir / "report.md").read_text()
    assert "## Phases the claims cannot trust" in report and "over its 1% error budget" in report
    assert "| invalid | cache_throughput |" in report


def test_redis_outage_is_played_recorded_and_decided(stack, tmp_path):
    """Redis is killed mid-phase by the stack and started again; the cached variants keep answering
    (or not: the claims say), the fault is in run.json and the report, and the target was not restarted."""
    settings = get_settings()
    target_pid = Stack(settings).state.get("scaling_reads", {}).get("pid")
    env = {**os.environ, "HARNESS_RESULTS_DIR": str(tmp_path)}
    done = harness("run", "scaling_reads", "--scenarios", "redis_outage", "--repeat", "1", "--users", "8", env=env)
    run, run_dir = only_run(tmp_path)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert [p["variant"] for p in run["phases"]] == ["cache_aside", "cache_aside_singleflight"]
    for phase in run["phases"]:
        (fault,) = phase["faults"]
        assert fault["error"] is None and (fault["service"], fault["action"]) == ("redis", "kill")
        assert phase["measured_start"] + 6 <= fault["begin"] < fault["end"] < phase["end"]
        assert phase["fault_availability"] is not None and phase["recovery_s"] is not None
    assert [f["phase"] for f in run["faults"]] == [1, 2]
    claims = [c for c in run["claims"] if c["scenario"] == "redis_outage"]
    assert claims and all(c["status"] in ("held", "failed") for c in claims), claims
    assert (done.returncode == 0) == gate.passed(record.load(run))
    assert Stack(settings).state.get("scaling_reads", {}).get("pid") == target_pid  # no restart of the target
    assert requests.get(f"{url(get_module('scaling_reads'))}/cache_aside/products/1", timeout=5).status_code == 200
    assert "## Faults" in (run_dir / "report.md").read_text() and "fault phase 1: kill redis" in done.stdout
