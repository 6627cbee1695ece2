"""One run: plan (module spec, variants, scenarios) -> stack ensured -> phases -> summary -> verdicts.

Scenarios run in the plan's order. A fixed scenario's phases are variant x repetition, interleaved
(A B C A B C) so that drift hits every variant alike; a swept one rises rate by rate while its
variants hold (harness/sweep.py), one pass per repetition. Each phase is one headless Locust process
(harness/phase.py). run.json is rewritten after every phase and carries the spec's presentation,
so `harness report` re-renders a run on its own.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

from harness import calibrate, dashboard, gate, results, summary, sweep
from harness.phase import PhaseFailed, check_undone, phase_record, run_phase, server_metrics
from harness.plan import PhaseSpec, Plan
from harness.prom import Prometheus
from harness.record import Environment, Phase, Run, RunFault
from harness.settings import Settings

__all__ = ["PhaseFailed", "Progress", "conclude", "environment", "execute"]


def environment(settings: Settings, services: list[str]) -> Environment:
    """What the numbers were measured on, with each service's version as its stack entry probes it."""
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    env = {"cpu_count": os.cpu_count(), "cpu_model": cpu_model, "platform": platform.platform(),
           "python": platform.python_version(), "locust": version("locust")}
    git = ["git", "-C", str(settings.project_dir)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    env["git_commit"] = head.stdout.strip() or None
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    env["git_dirty"] = bool(dirty.stdout.strip()) if head.returncode == 0 else None
    env["calibration_ops_s"] = round(calibrate.ops_per_second())  # this machine's yardstick (harness compare)
    from harness.stack import SERVICES

    for name in services:
        probe = getattr(SERVICES.get(name), "version", None)
        try:
            env[name] = probe(settings) if callable(probe) else None
        except Exception:  # a missing version is recorded as unknown, never fatal
            env[name] = None
    return Environment.model_validate(env)


def conclude(run: Run, plan: Plan, histograms: dict[int, str]) -> Run:
    bounds = {name: s.p99_bound_ms for name in plan.scenarios if (s := plan.sweep(name)) is not None}
    run.curves = sweep.curves(run.phases, bounds)
    run.summary = summary.summarize_run(run.phases, histograms, run.curves)
    run.claims = gate.verdicts(plan.spec.claims, run.summary, run.phases, plan.not_run)
    run.invariants = summary.invariant_rows(run.phases)
    run.faults = [RunFault(phase=p.index, **f.dump()) for p in run.phases for f in p.faults]
    run.passed = gate.passed(run)
    return run


class Progress:
    """What a run tells its caller while it goes; the CLI draws it with rich, tests ignore it."""

    def run_started(self, run_dir: Path, run: Run, estimate_s: float) -> None: ...

    def phase_started(self, spec: PhaseSpec) -> None: ...

    def tick(self) -> None: ...

    def phase_done(self, record: Phase) -> None: ...


class _Runner:
    """The loop over phases, with what each one needs; one per run."""

    def __init__(self, plan: Plan, settings: Settings, run: Run, run_dir: Path, progress: Progress) -> None:
        self.plan, self.settings, self.run, self.run_dir, self.progress = plan, settings, run, run_dir, progress
        self.prom, self.histograms = Prometheus(settings.prometheus_url), {}

    @property
    def next_index(self) -> int:
        return len(self.run.phases) + 1

    def phase(self, spec: PhaseSpec) -> Phase:
        self.progress.phase_started(spec)
        exact, fault_records = run_phase(self.plan, spec, self.run_dir, self.run.run_id, self.settings,
                                         self.progress.tick)
        time.sleep(self.settings.scrape_interval_s * 2)  # let Prometheus scrape past the phase's end
        server = server_metrics(self.prom, self.plan.spec, self.settings, spec.variant, exact["measured_start"],
                                exact["end"])
        record = phase_record(self.plan.spec, spec, exact, server, fault_records)
        self.histograms[spec.index] = exact["requests"].get(self.plan.spec.latency_of, {}).get("hdr", "")
        self.run.phases.append(record)
        results.write_run(self.run_dir, self.run)
        self.progress.phase_done(record)
        check_undone(spec, fault_records)
        return record

    def sweep(self, name: str) -> None:
        """One pass per repetition; each step runs the variants still holding at the next rate."""
        plan, spec = self.plan, self.plan.sweep(name)
        budget = plan.spec.scenario(name).error_budget
        for repetition in range(1, plan.repeat + 1):
            tried: dict[str, list[dict]] = {}
            started = time.monotonic()
            while step := sweep.next_step(spec, plan.scenario_variants(name), tried, time.monotonic() - started,
                                          budget):
                for variant in step.variants:
                    record = self.phase(plan.sweep_phase(name, variant, repetition, step.index, step.rate,
                                                         self.next_index))
                    tried.setdefault(variant, []).append(sweep.point_of(record))

    def all(self) -> None:
        for name in self.plan.scenarios:
            if self.plan.sweep(name) is not None:
                self.sweep(name)
            else:
                for spec in self.plan.phases(name, self.next_index):
                    self.phase(spec)


def execute(plan: Plan, settings: Settings, progress: Progress | None = None) -> tuple[Run, Path]:
    """Run every phase and write results/<module>/<run-id>/; returns the run and its directory.

    run.json is rewritten after every phase, so an interrupted run keeps what it measured; the
    error is recorded in it and raised again.
    """
    from harness import report  # matplotlib loads only when a run gets this far
    from harness.stack import Stack, services_for

    progress = progress or Progress()
    services = services_for(plan.spec)
    Stack(settings).up(services)
    run_dir = results.new_run_dir(settings.results_dir, plan.spec.id)
    run = Run(run_id=run_dir.name, module=plan.spec.id, title=plan.spec.title, created=_iso(time.time()),
              parameters=plan.parameters(), environment=environment(settings, services),
              presentation=plan.spec.presentation(), phases=[])
    results.write_run(run_dir, run)
    progress.run_started(run_dir, run, plan.estimate_s())
    started = time.time()
    runner = _Runner(plan, settings, run, run_dir, progress)
    try:
        runner.all()
    except BaseException as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        conclude(run, plan, runner.histograms)
        run.finished, run.duration_s = _iso(time.time()), round(time.time() - started, 1)
        results.write_run(run_dir, run)
        dashboard.store(run, run_dir, settings)
        report.render(run, run_dir)
    return run, run_dir


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
