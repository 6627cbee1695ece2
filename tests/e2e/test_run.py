"""A short real `harness run` through the console script, then every dashboard panel against Prometheus."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from grafana import panel_queries

from harness.modules import get_module
from harness.settings import get_settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    results_dir = tmp_path_factory.mktemp("results")
    command = [sys.executable, "-m", "harness.cli", "run", "scaling_reads", "--duration", "4",
               "--warmup", "1", "--repeat", "1", "--users", "8", "--no-fail",
               "--variants", "direct", "cache_aside", "cache_aside_singleflight", "noop"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results_dir)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results_dir / "scaling_reads").iterdir()
    return json.loads((run_dir / "run.json").read_text()), run_dir, done.stdout


def test_run_writes_complete_results(short_run):
    run, run_dir, stdout = short_run
    workload = get_module("scaling_reads").workload()
    expected = [(s, v) for s in workload.DEFAULT_SCENARIOS for v in workload.SCENARIOS[s]["variants"]]
    assert [(p["scenario"], p["variant"]) for p in run["phases"]] == expected
    for phase in run["phases"]:
        assert phase["requests"] > 0 and phase["rps"] > 0
        assert phase["measured_start"] > phase["start"] and phase["end"] > phase["measured_start"]
        assert phase["latency_ms"]["p50"] > 0 and phase["timeline"]
        assert (run_dir / f"{phase['csv_prefix']}_stats.csv").exists()
        assert phase["server"]["server_requests"] > 0 and phase["server"]["cpu_ms_per_request"] > 0
    ycsb = run["summary"]["ycsb"]
    assert ycsb["direct"]["db_queries_per_read"] == pytest.approx(1.0, abs=0.05)
    assert 0 < ycsb["cache_aside"]["hit_ratio"] < 1
    assert run["summary"]["stampede"]["cache_aside"]["db_queries_per_expiry"] > 0
    assert {c["id"] for c in run["claims"]} == {c.id for c in workload.CLAIMS}
    for claim in run["claims"]:  # the open-model scenarios are not in the default run
        ran = claim["scenario"] in workload.DEFAULT_SCENARIOS
        assert (claim["status"] in ("pass", "fail") and claim["measured"] is not None) == ran, claim
    assert {(i["name"], i["variant"]) for i in run["invariants"]} >= {("lost_writes", "direct"),
                                                                     ("stale_reads", "cache_aside")}
    assert all(i["passed"] for i in run["invariants"])
    env = run["environment"]
    assert env["cpu_count"] and env["locust"] and env["postgres"] and env["redis"] and env["prometheus"]
    for name in ("report.md", "report.html", "plots/latency_percentiles.png", "plots/throughput.png"):
        assert (run_dir / name).stat().st_size > 0
    assert "cache_throughput" in stdout and ("PASSED" in stdout or "FAILED" in stdout)


def test_report_and_compare_rerender(short_run):
    run, run_dir, _ = short_run
    (run_dir / "report.md").unlink()
    env = {**os.environ, "HARNESS_RESULTS_DIR": str(run_dir.parent.parent)}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run_dir)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run["run_id"] in (run_dir / "report.md").read_text()
    done = subprocess.run([sys.executable, "-m", "harness.cli", "compare", run["run_id"], "latest"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and "cache_aside" in done.stdout


@pytest.mark.parametrize("dashboard", sorted(Path(__file__).parents[2].glob("dashboards/*.json")),
                         ids=lambda p: p.stem)
def test_every_dashboard_panel_returns_data(short_run, dashboard):
    run, _, _ = short_run
    start, end = run["phases"][0]["start"], run["phases"][-1]["end"] + 2
    empty = []
    for title, expr in panel_queries(dashboard, rate_interval="5s"):
        body = requests.get(f"{get_settings().prometheus_url}/api/v1/query_range", timeout=30,
                            params={"query": expr, "start": start, "end": end, "step": "1s"}).json()
        assert body["status"] == "success", (title, expr, body)
        if not any(series["values"] for series in body["data"]["result"]):
            empty.append(f"{title}: {expr}")
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)


@pytest.fixture(scope="module")
def sweep_run(stack, tmp_path_factory):
    """An open-model sweep through the CLI, with Locust's distributed mode (two worker processes)."""
    results_dir = tmp_path_factory.mktemp("results")
    command = [sys.executable, "-m", "harness.cli", "run", "scaling_reads", "--scenarios", "sweep",
               "--variants", "noop", "direct", "--rate", "60", "120", "--duration", "4", "--warmup", "1",
               "--repeat", "1", "--users", "40", "--processes", "2", "--no-fail"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results_dir)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results_dir / "scaling_reads").iterdir()
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_sweep_writes_curves_knees_and_open_model_phases(sweep_run):
    run, run_dir = sweep_run
    assert run["parameters"]["model"] == "open" and run["parameters"]["rates"] == [60, 120]
    assert [(p["group"], p["variant"]) for p in run["phases"]] == [
        ("sweep@60", "noop"), ("sweep@60", "direct"), ("sweep@120", "noop"), ("sweep@120", "direct")]
    for phase in run["phases"]:
        assert phase["model"] == "open" and phase["dropped"] == 0
        assert phase["rps"] == pytest.approx(phase["rate"], rel=0.05)
        assert phase["schedule_lag_ms"]["count"] == pytest.approx(phase["requests"], abs=10)  # in flight at stop
    curve = run["curves"]["sweep"]
    assert curve["bound_ms"] == 100
    assert [p["rate"] for p in curve["variants"]["noop"]["points"]] == [60, 120]
    assert curve["variants"]["noop"]["knee_rate"] == 120  # a trivial endpoint holds both rates
    assert run["summary"]["sweep"]["noop"]["knee_rate"] == 120
    assert (run_dir / "plots" / "latency_vs_throughput.png").stat().st_size > 0
    assert "Latency vs throughput: sweep" in (run_dir / "report.md").read_text()


def test_prometheus_sees_the_whole_distributed_load(sweep_run):
    """Both workers' exporters are scraped: the load side counts what the target served."""
    run, _ = sweep_run
    start, end = run["phases"][0]["start"], run["phases"][-1]["end"] + 3
    window = f"{int(end - start) + 1}s"

    def total(expr):
        body = requests.get(f"{get_settings().prometheus_url}/api/v1/query", timeout=30,
                            params={"query": f"sum(increase({expr}[{window}]))", "time": end}).json()
        return float(body["data"]["result"][0]["value"][1])

    # noop: no invariant probes, so the target served exactly what Locust sent
    sent = total('harness_load_requests_total{module="scaling_reads",variant="noop"}')
    served = total('harness_http_request_duration_seconds_count{module="scaling_reads",variant="noop"}')
    assert sent == pytest.approx(served, rel=0.05), (sent, served)
    selector = 'harness_load_requests_total{module="scaling_reads"}'
    per_instance = f"count by (instance) (count_over_time({selector}[{window}]))"
    instances = requests.get(f"{get_settings().prometheus_url}/api/v1/query", timeout=30,
                             params={"query": per_instance, "time": end}).json()["data"]["result"]
    assert len(instances) >= 2, instances  # the two worker processes, each on its own port


def test_stall_scenario_report_states_open_and_closed_p99(stack, tmp_path):
    """`harness run --scenarios stall`: the target freezes 2 s mid-window under each model; the
    report carries both p99s, as claims with their measured values."""
    command = [sys.executable, "-m", "harness.cli", "run", "scaling_reads", "--scenarios", "stall",
               "--duration", "8", "--warmup", "2", "--repeat", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(tmp_path)})
    (run_dir,) = (tmp_path / "scaling_reads").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    claims = {c["id"]: c for c in run["claims"]}
    detail = done.stdout[-2000:]
    assert claims["stall_open"]["status"] == "pass", (claims["stall_open"], detail)
    assert claims["stall_closed"]["status"] == "pass", (claims["stall_closed"], detail)
    assert claims["stall_open"]["measured"] > 10 * claims["stall_closed"]["measured"]
    assert done.returncode == 0, detail  # every claim of the run held, so the run passed
    report = (run_dir / "report.md").read_text()
    assert "stall_open" in report and "stall_closed" in report
