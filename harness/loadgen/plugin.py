"""The harness plugin for Locust, wired through Locust's events.

A locustfile calls `setup(module, variants, scenarios)` once at import. That adds the options
`--variant`, `--scenario`, `--warmup`, `--results-file`, `--run-id`, `--phase` and `--no-stack`,
and reads Locust's own `--profile` as the load shape (default steady); records exact latencies
(HdrHistogram) after the warm-up; exports load-side Prometheus metrics; starts the embedded stack
when the target does not answer (and stops what it started on quit); runs the module's invariant
checks when the test stops; and writes one JSON results file that `harness run` reads.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import gevent
import requests
from locust import events
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from harness.loadgen import exporter
from harness.loadgen.arrivals import Arrivals
from harness.loadgen.recorder import AGGREGATE, ExactRecorder
from harness.modules import get_module
from harness.settings import get_settings
from harness.shapes import PROFILES, rate_fraction

log = logging.getLogger("harness")
Invariant = Callable[[Environment], Iterable[dict]]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Plugin:
    """The state of one Locust process: options, recorder, timings, invariants."""

    def __init__(self, module: str, variants: Sequence[str], scenarios: Sequence[str]) -> None:
        self.module, self.variants, self.scenarios = module, list(variants), list(scenarios)
        self.recorder = ExactRecorder()
        self.invariants: list[Invariant] = []
        self.environment: Environment | None = None
        self.started_services: list[str] = []
        self.start = self.measured_start = self.end = 0.0
        self.cpu_at_measured_start = 0.0
        self.load_cpu_seconds = 0.0
        self.arrivals: Arrivals | None = None
        self.rate_share = 1.0
        self.worker_counts: dict[str, int] = {}  # measured requests each worker reported (master only)
        self.worker_cpu_seconds = 0.0
        self.finals: set[str] = set()
        self.pending_results = False

    @property
    def options(self):
        return self.environment.parsed_options

    # --- options -----------------------------------------------------------------------------
    def add_options(self, parser) -> None:
        group = parser.add_argument_group(
            "pattern-harness", "Locust's own --profile picks the load shape: smoke, steady (default), step or spike")
        group.add_argument("--variant", choices=self.variants, default=self.variants[0],
                           env_var="LOCUST_VARIANT", help="which variant of the pattern to load")
        group.add_argument("--scenario", choices=self.scenarios, default=self.scenarios[0],
                           env_var="LOCUST_SCENARIO", help="which workload of the module to run")
        group.add_argument("--warmup", type=float, default=5.0, env_var="LOCUST_WARMUP",
                           help="seconds at the start left out of the exact latencies and Locust's stats")
        group.add_argument("--results-file", default="", help="write exact results as JSON here on stop")
        group.add_argument("--run-id", default="", help="run id for the harness_phase metric")
        group.add_argument("--phase", type=int, default=0, help="phase index for the harness_phase metric")
        group.add_argument("--rate", type=float, default=0.0, env_var="LOCUST_RATE",
                           help="open model: arrivals per second across all workers, served by the -u users "
                                "(0, the default: closed model)")
        group.add_argument("--arrivals", choices=["fixed", "poisson"], default="fixed", env_var="LOCUST_ARRIVALS",
                           help="open model: fixed spacing or Poisson arrivals")
        group.add_argument("--no-stack", action="store_true", default=False, env_var="LOCUST_NO_STACK",
                           help="never start the embedded stack, even when the target does not answer")

    # --- lifecycle ---------------------------------------------------------------------------
    def on_init(self, environment: Environment, **_) -> None:
        self.environment = environment
        # Locust's own --profile (a free-form run label) names the load shape here.
        self.options.profile = self.options.profile or "steady"
        if self.options.profile not in PROFILES:
            raise SystemExit(f"--profile must be one of {', '.join(PROFILES)}, got {self.options.profile!r}")
        if self.options.rate < 0:
            raise SystemExit(f"--rate must be >= 0 arrivals/s (0 is the closed model), got {self.options.rate}")
        if isinstance(environment.runner, MasterRunner):
            environment.runner.register_message("harness_final", self._add_final_delta)
        module = get_module(self.module)
        if not environment.host:
            environment.host = module.url
        settings = get_settings()
        # Workers fire the request events, so each serves its own exporter: one per container in
        # compose, or the next free port for local `--processes` workers. The master exports users.
        exporter.serve(settings.loadgen_metrics_host, settings.loadgen_metrics_port,
                       tries=settings.loadgen_metrics_ports)
        exporter.DROPPED.labels(self.module, self.options.variant)  # a 0 series, so dashboards show the model
        if isinstance(environment.runner, WorkerRunner):
            return
        exporter.USERS.labels(self.module, self.options.variant).set_function(
            lambda: environment.runner.user_count if environment.runner else 0)
        if not self.options.no_stack:
            self._ensure_stack(module)

    def _ensure_stack(self, module) -> None:
        try:
            if requests.get(f"{self.environment.host}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        from harness.stack import Stack, StackError, services_for

        log.info("%s does not answer; starting the embedded stack", self.environment.host)
        try:
            self.started_services = Stack(get_settings()).up(services_for(module))
        except StackError as exc:
            raise SystemExit(f"cannot start the embedded stack: {exc}") from None

    def on_quit(self, exit_code: int = 0, **_) -> None:
        """After Locust's own shutdown, when every worker has sent its last samples."""
        if self.pending_results:
            self._finish(self.environment)
        if self.started_services:
            from harness.stack import Stack

            Stack(get_settings()).down(self.started_services)

    def on_test_start(self, environment: Environment, **_) -> None:
        self.start = time.time()
        self.worker_counts, self.worker_cpu_seconds, self.finals = {}, 0.0, set()
        self.recorder.reset(self.start + self.options.warmup)
        self.measured_start = self.recorder.measured_start
        exporter.PHASE.labels(self.module, self.options.variant, self.options.run_id,
                              str(self.options.phase)).set(1)
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            if self.options.rate > 0 and runner.worker_count != self.options.expect_workers:
                log.warning("the arrival rate is split over --expect-workers=%d workers, but %d are connected",
                            self.options.expect_workers, runner.worker_count)
        elif self.options.rate > 0:
            self._start_arrivals()
        gevent.spawn_later(self.options.warmup, self._end_warmup)

    def _start_arrivals(self) -> None:
        options, start = self.options, time.time()
        if isinstance(self.environment.runner, WorkerRunner):  # the master passes its --expect-workers on
            self.rate_share = 1.0 / max(1, options.expect_workers)
        self.arrivals = Arrivals(
            options.rate * self.rate_share, options.arrivals == "poisson", self.recorder,
            rate_fraction=lambda elapsed: rate_fraction(options.profile, elapsed, options.run_time),
            on_drop=exporter.DROPPED.labels(self.module, options.variant).inc,
            stopping=lambda: self.environment.runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP))
        self.arrivals.start()
        log.info("open model (pid %d): %.1f arrivals/s (%s), %s users, started at %.3f", os.getpid(),
                 options.rate * self.rate_share,
                 options.arrivals, options.num_users, start)

    def _end_warmup(self) -> None:
        if not isinstance(self.environment.runner, WorkerRunner):
            self.environment.runner.stats.reset_all()  # the master's stats are the aggregate
        self.cpu_at_measured_start = _cpu_seconds()

    def on_request(self, request_type: str, name: str, response_time: float, exception, start_time=None,
                   context=None, **_) -> None:
        failed = exception is not None
        start = start_time if start_time is not None else time.time() - response_time / 1000
        intended = (context or {}).get("intended_start")
        self.recorder.record(name, response_time, start, failed, intended)
        latency_s = response_time / 1000 + (max(0.0, start - intended) if intended is not None else 0.0)
        exporter.observe(self.module, self.options.variant, name, request_type, latency_s, failed)

    def on_report_to_master(self, client_id: str, data: dict) -> None:
        data["harness"] = self.recorder.take_delta()

    def on_worker_report(self, client_id: str, data: dict) -> None:
        self._add_delta(client_id, data.get("harness", {}))

    def _add_final_delta(self, environment: Environment, msg, **_) -> None:
        self._add_delta(msg.node_id, msg.data)
        self.finals.add(msg.node_id)

    def _add_delta(self, client_id: str, delta: dict) -> None:
        self.recorder.add_delta(delta)
        self.worker_counts[client_id] = self.worker_counts.get(client_id, 0) + delta.get("count", 0)
        self.worker_cpu_seconds += delta.get("cpu_seconds", 0.0)

    def on_test_stop(self, environment: Environment, **_) -> None:
        self.end = time.time()
        if self.arrivals is not None:
            self.arrivals.stop()
            self.arrivals = None
        exporter.PHASE.labels(self.module, self.options.variant, self.options.run_id,
                              str(self.options.phase)).set(0)
        self.load_cpu_seconds = _cpu_seconds() - self.cpu_at_measured_start
        runner = environment.runner
        if isinstance(runner, WorkerRunner):  # the samples the periodic reports have not carried yet
            final = self.recorder.take_delta()
            runner.send_message("harness_final", {**final, "cpu_seconds": self.load_cpu_seconds})
            return
        if isinstance(runner, MasterRunner) and len(self.finals) < runner.worker_count:
            # Stopped by --run-time or a signal, Locust's master fires test_stop before its workers stop;
            # their last samples arrive as Locust quits, so the results are written then.
            self.pending_results = True
            return
        self._finish(environment)

    def _finish(self, environment: Environment) -> None:
        self.pending_results = False
        self.load_cpu_seconds += self.worker_cpu_seconds
        checked = [result for check in self.invariants for result in check(environment)]
        results = self._results(checked)
        _print_summary(results, self.options.variant)
        if self.options.results_file:
            path = Path(self.options.results_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=1))

    def _results(self, invariants: list[dict]) -> dict:
        exact = self.recorder.results()
        count = exact["requests"][AGGREGATE].get("count", 0)
        distributed = isinstance(self.environment.runner, MasterRunner)
        return {
            "module": self.module, "variant": self.options.variant, "scenario": self.options.scenario,
            "profile": self.options.profile, "host": self.environment.host,
            "start": self.start, "measured_start": self.measured_start, "end": self.end,
            "users": self.options.num_users, **exact,
            "model": "open" if self.options.rate > 0 else "closed", "rate": self.options.rate or None,
            "arrivals": exact["tallies"].get("arrivals"), "dropped": exact["tallies"].get("dropped_arrivals"),
            "load_cpu_seconds": self.load_cpu_seconds,
            "load_cpu_us_per_request": self.load_cpu_seconds / count * 1e6 if count else None,
            "workers": dict(sorted(self.worker_counts.items())) if distributed else None,
            "invariants": invariants,
        }


def _print_summary(results: dict, variant: str) -> None:
    lines = [f"Exact latencies after warm-up, variant {variant} (ms, HdrHistogram):",
             f"{'name':<44}{'count':>9}{'fail':>7}{'p50':>9}{'p95':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"]
    for name, r in results["requests"].items():
        if r.get("count"):
            lines.append(f"{name[:43]:<44}{r['count']:>9}{r['failures']:>7}{r['p50']:>9.3f}{r['p95']:>9.3f}"
                         f"{r['p99']:>9.3f}{r['p999']:>9.3f}{r['max']:>9.3f}")
    for inv in results["invariants"]:
        lines.append(f"invariant {inv['name']}: {inv['value']} (expected {inv['expected']}) "
                     f"{'ok' if inv['passed'] else 'VIOLATED'} - {inv.get('detail', '')}")
    print("\n".join(lines), flush=True)


_plugin: Plugin | None = None


class Paced:
    """Mixin for a locustfile's user class: with --rate, every task iteration waits for an arrival
    and its requests are timed from that arrival's intended start; without it, no think time.

    Put it first: `class Shopper(Paced, FastHttpUser)`, and call `super().on_start()` last.
    """

    _intended: float | None = None

    def wait_time(self) -> float:
        arrivals = _plugin.arrivals if _plugin is not None else None
        if arrivals is not None:
            self._intended = arrivals.take()
        return 0.0

    def on_start(self) -> None:
        self.wait_time()  # the first iteration waits for an arrival too

    def context(self) -> dict:
        return {"intended_start": self._intended} if self._intended is not None else {}


def setup(module: str, variants: Sequence[str], scenarios: Sequence[str] = ("default",)) -> Plugin:
    """Wire the harness into Locust for one module; call once, at the locustfile's import."""
    global _plugin
    if _plugin is not None:
        return _plugin
    plugin = _plugin = Plugin(module, variants, scenarios)
    events.init_command_line_parser.add_listener(plugin.add_options)
    events.init.add_listener(plugin.on_init)
    events.test_start.add_listener(plugin.on_test_start)
    events.request.add_listener(plugin.on_request)
    events.report_to_master.add_listener(plugin.on_report_to_master)
    events.worker_report.add_listener(plugin.on_worker_report)
    events.test_stop.add_listener(plugin.on_test_stop)
    events.quit.add_listener(plugin.on_quit)
    return plugin


def invariant(check: Invariant) -> Invariant:
    """Register a correctness check run against the real store when the test stops.

    It returns dicts: name, value, expected (text such as "== 0"), passed, detail.
    """
    if _plugin is None:
        raise RuntimeError("call harness.loadgen.setup(...) before registering invariants")
    _plugin.invariants.append(check)
    return check


def tally(name: str, amount: int = 1) -> None:
    """Count something the invariants need (acknowledged writes, say); summed across workers."""
    if _plugin is not None:
        _plugin.recorder.tallies[name] += amount
