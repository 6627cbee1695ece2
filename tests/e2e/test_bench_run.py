"""A short real `harness bench` through the console script (both sides measured, written like a run,
re-rendered by `harness report`), and a bench against a target whose floor fails: unmeasured, not met.
Whether the ratios hold on this machine is what the bench itself says (README, "Hot paths")."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import bench
from harness.modules import get_module
from harness.record import BenchRun
from harness.settings import get_settings
from tests.integration.served import serve

pytestmark = pytest.mark.e2e
SPEC = get_module("scaling_reads")


def cli(*args: str, results_dir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HARNESS_RESULTS_DIR": str(results_dir)})


def test_a_short_bench_measures_both_sides_and_renders(stack, tmp_path):
    done = cli("bench", "scaling_reads", "--duration", "2", "--warmup", "2", "--repeat", "1", "--no-fail",
               results_dir=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (tmp_path / "bench").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "bench" and run["module"] == "scaling_reads" and "error" not in run
    sides = [(m["side"], m.get("variant") or m.get("locust")) for m in run["measurements"]]
    assert sides == [("target", "noop"), ("target", "cache_aside"), ("load", "bare"), ("load", "harness")]
    for m in run["measurements"]:
        assert bench.unmeasured_reason(m) is None, m
        assert m["requests"] > 100 and m["requests_per_s"] > 0
        assert (m["target_cpu_us"] if m["side"] == "target" else m["load_cpu_us"]) > 0
    for side in ("target", "load"):
        assert run[side]["status"] in ("met", "missed") and run[side]["ratio"] > 0  # measured, whatever it says
    assert run["passed"] == (run["target"]["status"] == run["load"]["status"] == "met")
    assert f"{run['target']['ratio']:.2f}x" in done.stdout and "report:" in done.stdout
    report = (run_dir / "report.md").read_text()
    assert "| noop | 1 |" in report and "| harness | 1 |" in report
    (run_dir / "report.md").unlink()
    again = cli("report", str(run_dir), results_dir=tmp_path)
    assert again.returncode == 0 and (run_dir / "report.md").read_text() == report
    refused = cli("compare", str(run_dir), str(run_dir), results_dir=tmp_path)
    assert refused.returncode == 2 and "compare takes two module runs" in refused.stdout


def test_a_floor_that_fails_leaves_the_ratio_unmeasured(stack, tmp_path):
    """Every second request to noop answers 503 (the targets' test-only failure switch): wrk and the
    target's counters both see it, and the verdict is unmeasured, never met."""
    from targets.common import TargetSettings
    from targets.scaling_reads.main import build

    settings = get_settings()
    failing = TargetSettings(pg_dsn=settings.pg_dsn, redis_url=settings.redis_url, target_fail_variant="noop",
                             target_fail_ratio=0.5)
    with serve(build(failing)) as base:
        runner = bench.Bench(SPEC, settings, bench.Options(duration_s=2, warmup_s=2, repeat=1), tmp_path,
                             lambda line: None)
        runner.base = base
        runner.warm()
        measured = [runner.wrk("noop", 1), runner.wrk("cache_aside", 1)]
    noop, hit = measured
    assert noop["failed"] > 0 and "not 2xx" in bench.unmeasured_reason({**noop, "error": None})
    assert noop["wrk"]["non_2xx"] > 0 and hit["failed"] == 0
    run = bench.conclude(BenchRun(kind="bench", run_id="r", module=SPEC.id, hot_path=SPEC.hot_path.model_dump(),
                                  measurements=measured, exporter_port=1))
    assert run.target["status"] == "unmeasured" and run.passed is False
