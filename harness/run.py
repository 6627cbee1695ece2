"""One run: plan (module, variants, profile) -> stack ensured -> phases via Locust -> summary -> verdicts.

Phases are variant x repetition, interleaved (A B C A B C) so that drift hits every variant alike.
Each phase is one headless `locust` process on the module's own locustfile, exactly what a user
could run by hand; it writes Locust's CSVs and the exact-latency JSON into the run directory. The
server side of each phase's measured window comes from Prometheus.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import psycopg
import redis
import requests

from harness import results, summary
from harness.claims import check_all
from harness.modules import Module
from harness.plan import PhaseSpec, Plan
from harness.prom import Prometheus, ratio, with_labels
from harness.settings import Settings
from harness.stack import Stack, services_for


def environment(settings: Settings) -> dict:
    """What the numbers were measured on."""
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    env = {"cpu_count": os.cpu_count(), "cpu_model": cpu_model, "platform": platform.platform(),
           "python": platform.python_version(), "locust": version("locust")}
    git = ["git", "-C", str(settings.project_dir)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    env["git_commit"] = head.stdout.strip() or None
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    env["git_dirty"] = bool(dirty.stdout.strip()) if head.returncode == 0 else None
    probes = {
        "postgres": lambda: psycopg.connect(settings.pg_dsn, connect_timeout=3).execute("SHOW server_version")
        .fetchone()[0],
        "redis": lambda: redis.Redis.from_url(settings.redis_url, socket_timeout=3).info("server")["redis_version"],
        "prometheus": lambda: requests.get(f"{settings.prometheus_url}/api/v1/status/buildinfo", timeout=3)
        .json()["data"]["version"],
    }
    for name, probe in probes.items():
        try:
            env[name] = probe()
        except Exception:  # a missing version is recorded as unknown, never fatal
            env[name] = None
    return env


def locust_command(plan: Plan, spec: PhaseSpec, run_dir: Path, run_id: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(plan.module.locustfile), "--headless",
            "--host", plan.module.url, "--variant", spec.variant, "--scenario", spec.scenario,
            "--profile", plan.profile, "-u", str(spec.users), "-r", str(spec.users),
            "-t", f"{spec.duration_s + spec.warmup_s:g}s", "--warmup", f"{spec.warmup_s:g}",
            "--csv", str(run_dir / "phases" / spec.slug), "--results-file",
            str(run_dir / "phases" / f"{spec.slug}.json"), "--run-id", run_id, "--phase", str(spec.index),
            "--exit-code-on-error", "0", "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
            "--no-stack", *(["--rate", f"{spec.rate:g}", "--arrivals", plan.arrivals] if spec.rate else []),
            *(["--processes", str(plan.processes)] if plan.processes > 1 else []),
            *plan.locust_args]


class PhaseFailed(RuntimeError):
    pass


def run_phase(plan: Plan, spec: PhaseSpec, run_dir: Path, run_id: str, tick: Callable[[], None]) -> dict:
    """One headless Locust process, bounded by its run time plus a grace period."""
    (run_dir / "phases").mkdir(exist_ok=True)
    log_path = run_dir / "phases" / f"{spec.slug}.log"
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    deadline = time.monotonic() + spec.duration_s + spec.warmup_s + 120
    with log_path.open("w") as log:
        process = subprocess.Popen(locust_command(plan, spec, run_dir, run_id), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise PhaseFailed(f"phase {spec.slug} overran its time and was killed; see {log_path}")
            tick()
            time.sleep(0.25)
    results_file = run_dir / "phases" / f"{spec.slug}.json"
    if process.returncode != 0 or not results_file.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise PhaseFailed(f"locust exited {process.returncode} in phase {spec.slug}; {log_path}:\n{tail}")
    return json.loads(results_file.read_text())


def server_metrics(prom: Prometheus, module: Module, variant: str, start: float, end: float) -> dict:
    """The module's server-side ratios over one window, plus target CPU per request."""
    labels = {"module": module.id, "variant": variant}
    metrics = {}
    for name, (numerator, denominator) in module.workload().SERVER_RATIOS.items():
        metrics[name] = ratio(prom.increase(with_labels(numerator, **labels), start, end),
                              prom.increase(with_labels(denominator, **labels), start, end))
    requests_served = prom.increase(with_labels("harness_http_request_duration_seconds_count", **labels),
                                    start, end)
    cpu = prom.increase(f'process_cpu_seconds_total{{job="targets",instance=~".*:{module.port}"}}', start, end)
    metrics["cpu_ms_per_request"] = None if cpu is None else ratio(cpu * 1000, requests_served)
    metrics["server_requests"] = requests_served
    return metrics


def phase_record(plan: Plan, spec: PhaseSpec, exact: dict, server: dict, run_dir: Path) -> dict:
    count, failures, rps = summary.phase_counts(exact)
    latency_of = getattr(plan.module.workload(), "LATENCY_OF", None)
    return {
        **asdict(spec), "start": exact["start"], "measured_start": exact["measured_start"], "end": exact["end"],
        "csv_prefix": f"phases/{spec.slug}", "requests": count, "failures": failures, "rps": rps,
        "latency_ms": summary.phase_latency(exact, latency_of),
        "timeline": summary.timeline(exact),
        "server": server, "load_cpu_us_per_request": exact.get("load_cpu_us_per_request"),
        "invariants": exact.get("invariants", []),
        **({"model": "open", "arrivals": exact.get("arrivals"), "dropped": exact.get("dropped") or 0,
            "schedule_lag_ms": exact.get("schedule_lag_ms"),
            "service_latency_ms": summary.phase_latency({"requests": exact["service"]}, latency_of)}
           if exact.get("service") else {"model": "closed"}),
    }


def conclude(run: dict, plan: Plan, histograms: dict[int, str]) -> dict:
    run["summary"] = summary.summarize_run(run["phases"], histograms)
    run["curves"] = summary.curves(run["phases"], plan.knee_p99_ms)
    for scenario, curve in run["curves"].items():  # knees become summary metrics that claims can name
        run["summary"][scenario] = {v: {"knee_rate": c["knee_rate"]} for v, c in curve["variants"].items()}
    run["claims"] = [v.to_dict() for v in check_all(plan.module.workload().CLAIMS, run["summary"])]
    run["invariants"] = summary.invariant_rows(run["phases"])
    run["passed"] = (all(c["status"] != "fail" for c in run["claims"])
                     and all(i["passed"] for i in run["invariants"]) and not run.get("error"))
    return run


class Progress:
    """What a run tells its caller while it goes; the CLI draws it with rich, tests ignore it."""

    def run_started(self, run_dir: Path, phases: list[PhaseSpec]) -> None: ...

    def phase_started(self, spec: PhaseSpec) -> None: ...

    def tick(self) -> None: ...

    def phase_done(self, record: dict) -> None: ...


def execute(plan: Plan, settings: Settings, progress: Progress | None = None) -> tuple[dict, Path]:
    """Run every phase and write results/<module>/<run-id>/; returns the run and its directory.

    run.json is rewritten after every phase, so an interrupted run keeps what it measured; the
    error is recorded in it and raised again.
    """
    from harness import report  # matplotlib loads only when a run gets this far

    progress = progress or Progress()
    Stack(settings).up(services_for(plan.module))
    run_dir = results.new_run_dir(settings.results_dir, plan.module.id)
    phases = plan.phases()
    run = {"run_id": run_dir.name, "module": plan.module.id, "title": plan.module.title,
           "created": _iso(time.time()), "parameters": plan.parameters(), "environment": environment(settings),
           "phases": []}
    results.write_run(run_dir, run)
    progress.run_started(run_dir, phases)
    prom, histograms, started = Prometheus(settings.prometheus_url), {}, time.time()
    latency_of = getattr(plan.module.workload(), "LATENCY_OF", None) or summary.AGGREGATE
    try:
        for spec in phases:
            progress.phase_started(spec)
            exact = run_phase(plan, spec, run_dir, run.get("run_id"), progress.tick)
            time.sleep(settings.scrape_interval_s * 2)  # let Prometheus scrape past the phase's end
            server = server_metrics(prom, plan.module, spec.variant, exact["measured_start"], exact["end"])
            record = phase_record(plan, spec, exact, server, run_dir)
            histograms[spec.index] = exact["requests"].get(latency_of, {}).get("hdr", "")
            run["phases"].append(record)
            results.write_run(run_dir, run)
            progress.phase_done(record)
    except BaseException as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        conclude(run, plan, histograms)
        run["finished"], run["duration_s"] = _iso(time.time()), round(time.time() - started, 1)
        results.write_run(run_dir, run)
        report.render(run, run_dir)
    return run, run_dir


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
