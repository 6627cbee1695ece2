"""Short real `harness run`s through the console script: results complete and consistent with the spec,
every dashboard panel against Prometheus, the adaptive sweep, and a fault (the stall) played by the
stack. These check the mechanism; whether a claim holds on this machine is what the runs themselves say."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from grafana import dashboard_problems, panels_without_data

from harness import censored, sweep
from harness.modules import dashboard, get_module, url
from harness.record import Phase
from harness.settings import get_settings

pytestmark = pytest.mark.e2e
SPEC = get_module("scaling_reads")
DECIDED = ("held", "failed")


def harness_run(results_dir: Path, *args: str, timeout: int = 600):
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "scaling_reads", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HARNESS_RESULTS_DIR": str(results_dir)})
    (run_dir,) = (results_dir / "scaling_reads").iterdir()
    return done, json.loads((run_dir / "run.json").read_text()), run_dir


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    variants = ["direct", "cache_aside", "cache_aside_singleflight", "noop"]
    done, run, run_dir = harness_run(tmp_path_factory.mktemp("results"), "--duration", "4", "--warmup", "1",
                                     "--repeat", "1", "--users", "8", "--no-fail", "--variants", *variants)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run, run_dir, done.stdout


def test_run_writes_complete_results(short_run):
    run, run_dir, stdout = short_run
    variants = ["direct", "cache_aside", "cache_aside_singleflight", "noop"]
    expected = [(s, v) for s in SPEC.default_scenarios for v in variants if v in SPEC.scenario_variants(s)]
    assert [(p["scenario"], p["variant"]) for p in run["phases"]] == expected
    for phase in run["phases"]:
        assert phase["requests"] > 0 and phase["rps"] > 0 and phase["failure_ratio"] is not None
        assert phase["measured_start"] > phase["start"] and phase["end"] > phase["measured_start"]
        assert phase["latency_ms"]["p50"] > 0 and phase["timeline"]
        assert (run_dir / f"{phase['csv_prefix']}_stats.csv").exists()
        assert phase["server"]["server_requests"] > 0 and phase["server"]["cpu_ms_per_request"] > 0
        assert phase["noise"]["window_s"] > 0 and phase["noise"]["run_cpu_s"] > 0  # host noise sampled
    ycsb = run["summary"]["ycsb"]
    assert ycsb["direct"]["db_queries_per_read"] == pytest.approx(1.0, abs=0.05)
    assert 0 < ycsb["cache_aside"]["hit_ratio"] < 1
    assert run["summary"]["stampede"]["cache_aside"]["db_queries_per_expiry"] > 0
    assert run["presentation"] == json.loads(json.dumps(SPEC.presentation()))
    assert {c["id"] for c in run["claims"]} == {c.id for c in SPEC.claims}
    for claim in run["claims"]:  # every claim of a scenario that ran is measured and decided
        ran = claim["scenario"] in SPEC.default_scenarios
        assert (claim["status"] in DECIDED) if ran else claim["status"] == "not run", claim
    assert {(i["name"], i["variant"]) for i in run["invariants"]} >= {("lost_writes", "direct"),
                                                                     ("stale_reads", "cache_aside")}
    env = run["environment"]
    assert env["cpu_count"] and env["locust"] and env["postgres"] and env["redis"] and env["prometheus"]
    for name in ("report.md", "report.html", "plots/latency_percentiles.png", "plots/throughput.png"):
        assert (run_dir / name).stat().st_size > 0
    assert "cache_throughput" in stdout and ("PASSED" in stdout or "FAILED" in stdout)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_report_and_compare_rerender_from_run_json_alone(short_run, tmp_path):
    run, run_dir, _ = short_run
    (run_dir / "report.md").unlink()
    dashboard_png = (run_dir / "plots" / "dashboard.png").read_bytes()
    (run_dir / "plots" / "dashboard.png").unlink()
    # the stored dashboard.json redraws the dashboard: no Prometheus is reachable here
    env = {**os.environ, "HARNESS_RESULTS_DIR": str(run_dir.parent.parent),
           "HARNESS_PROMETHEUS_PORT": str(closed_port())}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run_dir)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (run_dir / "report.md").read_text()
    assert run["run_id"] in report and "hit ratio" in report  # the spec's columns, from run.json
    assert (run_dir / "plots" / "dashboard.png").read_bytes() == dashboard_png
    done = subprocess.run([sys.executable, "-m", "harness.cli", "compare", run["run_id"], "latest", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and "cache_aside" in done.stdout
    page = (tmp_path / "compare.html").read_text()  # both runs' dashboards side by side, claims' ratios first
    assert "Dashboards side by side" in page and (tmp_path / "plots" / "dashboards.png").stat().st_size > 50_000
    assert page.index("claim ") < page.index("<td>rps</td>")


def test_every_dashboard_panel_returns_data(short_run):
    run, run_dir, _ = short_run
    start, end = run["phases"][0]["start"], run["phases"][-1]["end"] + 2
    ran = sorted({p["variant"] for p in run["phases"]})
    empty = panels_without_data(dashboard(get_module("scaling_reads")), start, end, variants=ran)
    assert not empty, "panels without data after a run:\n" + "\n".join(empty)
    # the report drew every panel with data, or listed it as empty with why
    assert not dashboard_problems(run_dir, dashboard(get_module("scaling_reads")))
    assert '<img alt="dashboard.png" src="data:image/png;base64,' in (run_dir / "report.html").read_text()


@pytest.fixture(scope="module")
def sweep_run(stack, tmp_path_factory):
    """The adaptive sweep through the CLI, small and capped, with Locust's distributed mode (two workers)."""
    done, run, run_dir = harness_run(tmp_path_factory.mktemp("results"), "--scenarios", "sweep", "--variants",
                                     "direct", "--rate", "60", "--sweep-cap", "12", "--duration", "3",
                                     "--warmup", "1", "--repeat", "1", "--users", "40", "--processes", "2",
                                     "--no-fail")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run, run_dir


def test_sweep_rises_per_variant_and_reports_each_knee(sweep_run):
    run, run_dir = sweep_run
    the_sweep = run["parameters"]["sweeps"]["sweep"]
    assert the_sweep["start_rate"] == 60 and the_sweep["time_cap_s"] == 12
    phases = run["phases"]
    assert phases[0]["rate"] == 60 and {p["group"] for p in phases} == {"sweep"}
    for variant in ("direct",):
        mine = [p for p in phases if p["variant"] == variant]
        assert [p["step"] for p in mine] == list(range(len(mine)))  # one rate per step, rising
        assert [p["rate"] for p in mine] == [sweep.rate_at(get_module("scaling_reads").scenario("sweep").sweep
                                                           .model_copy(update={"start_rate": 60}), i)
                                             for i in range(len(mine))]
        points = [sweep.point_of(Phase.model_validate(p)) for p in mine]
        knee = run["curves"]["sweep"]["variants"][variant]["knee_rate"]
        assert knee == sweep.knee(points, 100, mine[0]["error_budget"])  # the reported knee is the points' knee
        assert run["summary"]["sweep"][variant]["knee_rate"] == knee
        # a variant climbs until a rate breaks, the cap is spent, or max_steps: never past a broken rate
        assert all(sweep.holds(p, 100, 0.01) for p in points[:-1])
        assert censored.interval(knee) is not None
    claim = next(c for c in run["claims"] if c["id"] == "knee")
    assert claim["status"] == "not run"  # cache_aside was not in this sweep
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

    # direct: no invariant probes over HTTP, so the target served what Locust sent. Workers exit right
    # after each phase, so their last second may go unscraped: the load side may count somewhat less,
    # never more, and with one worker's exporter unscraped it would count about half.
    sent = total('harness_load_requests_total{module="scaling_reads",variant="direct"}')
    served = total('harness_http_request_duration_seconds_count{module="scaling_reads",variant="direct"}')
    assert 0.8 * served <= sent <= 1.02 * served, (sent, served)
    selector = 'harness_load_requests_total{module="scaling_reads"}'
    per_instance = f"count by (instance) (count_over_time({selector}[{window}]))"
    instances = requests.get(f"{get_settings().prometheus_url}/api/v1/query", timeout=30,
                             params={"query": per_instance, "time": end}).json()["data"]["result"]
    assert len(instances) >= 2, instances  # the two worker processes, each on its own port


def test_stall_is_a_fault_played_by_the_stack(stack, tmp_path):
    """`--scenarios stall`: the target is SIGSTOPped for 2 s mid-window under each model, through the
    stack; both claims are decided from phases whose fault really happened, and the target answers after."""
    done, run, run_dir = harness_run(tmp_path, "--scenarios", "stall", "--duration", "8", "--warmup", "2",
                                     "--repeat", "1", timeout=300)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert [p["group"] for p in run["phases"]] == ["stall.closed", "stall.open"]
    for phase in run["phases"]:
        (fault,) = phase["faults"]
        assert fault["error"] is None and (fault["service"], fault["action"]) == ("scaling_reads", "stop")
        assert phase["measured_start"] + 5 <= fault["begin"] < fault["end"] <= phase["end"] + 5
        assert fault["end"] - fault["begin"] >= 2
    claims = {c["id"]: c for c in run["claims"]}
    assert claims["stall_open"]["status"] in DECIDED and claims["stall_closed"]["status"] in DECIDED
    assert (done.returncode == 0) == run["passed"]
    assert requests.get(f"{url(get_module('scaling_reads'))}/healthz", timeout=5).status_code == 200
    report = (run_dir / "report.md").read_text()
    assert "## Faults" in report and "| scaling_reads | stop |" in report
