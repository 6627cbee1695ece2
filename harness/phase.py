"""One phase: a headless Locust process, its faults, and its record in run.json.

Each phase is one `locust` process on the module's own locustfile, exactly what a user could run by
hand; it writes Locust's CSVs and the exact-latency JSON into the run directory. While it runs, the
tick loop plays the scenario's faults through the stack (harness/faults.py), timed from the measured
start the load generator writes to its started file, and the host's noise is sampled over the measured
window (harness/noise.py). The server side of the measured window comes from Prometheus, as the spec's
server metrics say.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from harness import faults, limits, noise, pids, summary
from harness.modules import locustfile, url
from harness.plan import PhaseSpec, Plan
from harness.prom import Prometheus, ratio, with_labels
from harness.record import Phase
from harness.settings import Settings
from harness.spec import ModuleSpec

TICK_S = 0.25
GRACE_S = 120  # beyond its run time: Locust's stop timeout, invariant settling, writing results


class PhaseFailed(RuntimeError):
    pass


def locust_command(plan: Plan, spec: PhaseSpec, run_dir: Path, run_id: str) -> list[str]:
    scenario = plan.spec.scenario(spec.scenario)
    prefix = run_dir / "phases" / spec.slug
    return [sys.executable, "-m", "locust", "-f", str(locustfile(plan.spec)), "--headless",
            "--host", url(plan.spec), "--variant", spec.variant, "--scenario", spec.scenario,
            *(["--load", spec.load] if spec.load else []),
            "--profile", plan.profile, "-u", str(spec.users), "-r", str(spec.users),
            "-t", f"{spec.duration_s + spec.warmup_s:g}s", "--warmup", f"{spec.warmup_s:g}",
            "--csv", str(prefix), "--results-file", f"{prefix}.json", "--started-file", f"{prefix}.started.json",
            "--run-id", run_id, "--phase", str(spec.index),
            # The gate is ours (error budgets in harness/gate.py), so Locust's own exit code on failed
            # requests would only hide the results file; a non-zero exit means Locust itself broke.
            "--exit-code-on-error", "0", "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
            "--no-stack", "--rate", f"{spec.rate:g}", *(["--arrivals", plan.arrivals] if spec.rate else []),
            *(["--processes", str(plan.processes)] if plan.processes > 1 else []),
            *scenario.options, *plan.locust_args]


def _stack_faults(settings: Settings) -> tuple[Callable[[str, str], None], Callable[[str, str], None]]:
    from harness.stack import Stack

    def call(method: str) -> Callable[[str, str], None]:
        def act(service: str, action: str) -> None:
            stack = Stack(settings)  # reads the state file now: a restarted service has a new pid
            if not hasattr(stack, method):
                raise RuntimeError(f"this stack has no {method}()")
            getattr(stack, method)(service, action)
        return act

    return call("fault_begin"), call("fault_end")


def _run_pids(plan: Plan, settings: Settings) -> Callable[[], tuple[list[int], list[int], list[str]]]:
    """The run's processes for harness/noise.py: this process (Locust is its child), the run's services
    this stack started (their groups), and the ones it uses but did not start. A service killed by a
    fault is still this stack's: it has no process to count until the fault ends."""
    from harness.stack import Stack, services_for

    services = services_for(plan.spec)

    def run_pids() -> tuple[list[int], list[int], list[str]]:
        stack = Stack(settings)  # reads the state file now: a restarted service has a new pid
        owned = [name for name in services if stack.owns(name)]
        unowned = [name for name in services if name not in owned and not stack.state.get(name, {}).get("fault")]
        return [os.getpid()], [stack.state[name]["pid"] for name in owned], unowned

    return run_pids


def run_phase(plan: Plan, spec: PhaseSpec, run_dir: Path, run_id: str, settings: Settings,
              tick: Callable[[], None]) -> tuple[dict, list[dict]]:
    """Run one Locust process, bounded by its run time plus a grace period; returns its results (with
    the host's noise over its measured window under "noise") and the record of each fault it played."""
    (run_dir / "phases").mkdir(exist_ok=True)
    log_path, started_file = run_dir / "phases" / f"{spec.slug}.log", run_dir / "phases" / f"{spec.slug}.started.json"
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    schedule = faults.FaultSchedule(plan.spec.scenario(spec.scenario).faults, *_stack_faults(settings), time.time)
    sampler = noise.Sampler(_run_pids(plan, settings))
    deadline = time.monotonic() + spec.duration_s + spec.warmup_s + GRACE_S
    with log_path.open("w") as log, limited(plan.spec.scenario(spec.scenario).limits, settings):
        process = subprocess.Popen(locust_command(plan, spec, run_dir, run_id), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    raise PhaseFailed(f"phase {spec.slug} overran its time and was killed; see {log_path}")
                if sampler.planned is None and started_file.exists():
                    measured_start = json.loads(started_file.read_text())["measured_start"]
                    sampler.expect(measured_start, measured_start + spec.duration_s)
                    if schedule.records:
                        schedule.start(measured_start)
                schedule.tick(time.time())
                sampler.tick()
                tick()
                time.sleep(TICK_S)
        finally:
            if process.poll() is None:  # interrupted: no Locust left behind
                process.kill()
                process.wait()
            records = schedule.finish()  # never leave a service stopped or killed
    results_file = run_dir / "phases" / f"{spec.slug}.json"
    if process.returncode != 0 or not results_file.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise PhaseFailed(f"locust exited {process.returncode} in phase {spec.slug}; {log_path}:\n{tail}")
    exact = json.loads(results_file.read_text())
    exact["noise"] = sampler.window(exact["measured_start"], exact["end"])
    return exact, records


@contextlib.contextmanager
def limited(declared, settings: Settings) -> Iterator[None]:
    """The scenario's resource limits on its stores, for the whole Locust process (harness/limits.py)."""
    from harness.stack import Stack

    with contextlib.ExitStack() as held:
        for limit in declared:
            stack = Stack(settings)
            stack._load()
            if not stack.owns(limit.service):
                raise PhaseFailed(f"a limit on {limit.service} needs the embedded stack: the harness did not start "
                                  f"{limit.service} here, so this scenario cannot run as declared")
            tree = pids.tree(stack.state[limit.service]["pid"])
            held.enter_context(limits.cpu_limited(f"{settings.port_offset}-{limit.service}", tree, limit.cpus))
        yield


def check_undone(spec: PhaseSpec, records: list[dict]) -> None:
    """After the phase is recorded: a fault that could not be undone leaves the stack broken."""
    broken = [r["error"] for r in records if (r["error"] or "").startswith("fault_end")]
    if broken:
        raise PhaseFailed(f"phase {spec.slug}: a fault could not be undone; `harness up` restores the stack: "
                          f"{'; '.join(broken)}")


def server_metrics(prom: Prometheus, module: ModuleSpec, settings: Settings, variant: str, start: float,
                   end: float) -> dict:
    """The spec's server metrics over one window, plus target CPU per request (every target has both)."""
    labels = {"module": module.id, "variant": variant}
    metrics = {}
    for metric in module.server_metrics:
        selector = with_labels(metric.numerator, **labels)
        if metric.kind == "ratio":
            metrics[metric.name] = ratio(prom.increase(selector, start, end),
                                         prom.increase(with_labels(metric.denominator, **labels), start, end))
        elif metric.kind == "increase":
            metrics[metric.name] = prom.increase(selector, start, end)
        elif metric.kind == "rate":
            metrics[metric.name] = ratio(prom.increase(selector, start, end), end - start)
        else:
            metrics[metric.name] = prom.over_window(selector, metric.reduce, start, end)
    served = prom.increase(with_labels("harness_http_request_duration_seconds_count", **labels), start, end)
    port = settings.module_port(module.port)
    cpu = prom.increase(f'process_cpu_seconds_total{{job="targets",instance=~".*:{port}"}}', start, end)
    metrics["cpu_ms_per_request"] = None if cpu is None else ratio(cpu * 1000, served)
    metrics["server_requests"] = served
    return metrics


def phase_record(module: ModuleSpec, spec: PhaseSpec, exact: dict, server: dict, fault_records: list[dict]) -> Phase:
    """The phase as run.json keeps it. Its invariants come with `enforced` as the load generator decided
    it from the spec (harness/loadgen/invariants.py); a result without it is refused, not guessed."""
    latency_of = module.latency_of
    record = {
        **asdict(spec), "start": exact["start"], "measured_start": exact["measured_start"], "end": exact["end"],
        "csv_prefix": f"phases/{spec.slug}", **summary.phase_counts(exact),
        "latency_ms": summary.phase_latency(exact, latency_of), "timeline": summary.timeline(exact),
        "server": {**server, **summary.request_metrics(exact, module.request_metrics)},
        "load_cpu_us_per_request": exact.get("load_cpu_us_per_request"),
        "invariants": exact.get("invariants", []), "faults": fault_records,
        **({"noise": exact["noise"]} if exact.get("noise") else {}),
        **({"model": "open", "arrivals": exact.get("arrivals"), "dropped": exact.get("dropped") or 0,
            "schedule_lag_ms": exact.get("schedule_lag_ms"),
            "service_latency_ms": summary.phase_latency({"requests": exact["service"]}, latency_of)}
           if exact.get("service") else {"model": "open" if spec.rate else "closed"}),
    }
    record["over_budget"] = (record["failure_ratio"] or 0.0) > spec.error_budget
    if fault_records:
        record.update(faults.fault_metrics(fault_records, exact.get("completions_per_second"),
                                           exact.get("failures_per_second"), exact["measured_start"], exact["end"]))
    return Phase.model_validate(record)
