"""The harness plugin for Locust: one object per Locust process, wired through Locust's events.

A locustfile calls `plugin = loadgen.setup(SPEC)` once, at import. The plugin adds the options of
`harness.loadgen.options`, attaches itself to the Environment (`environment.harness`) so users find
it, records exact latencies after the warm-up, exports load-side metrics, starts the embedded stack
when the target does not answer (`harness.loadgen.bootstrap`), adds the workers' deltas on the master
(`harness.loadgen.merge`), sets the scenario's knobs on the system under test for each test
(`harness.loadgen.knobs`), runs the registered invariants when the test stops
(`harness.loadgen.invariants`), and writes the results JSON that `harness run` reads.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import gevent
import locust
from locust.env import Environment
from locust.event import Events
from locust.rpc import Message
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from harness.loadgen import bootstrap, exporter, knobs, live_tab, merge, options
from harness.loadgen.arrivals import Arrivals
from harness.loadgen.invariants import Invariants
from harness.loadgen.recorder import ExactRecorder
from harness.settings import get_settings
from harness.shapes import rate_fraction
from harness.spec import Knob, ModuleSpec

__all__ = ["Paced", "Plugin", "failure_reason", "setup"]
log = logging.getLogger("harness")
FINALS_TIMEOUT_S = 15.0  # how long a stopping master waits for its workers' last samples


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def failure_reason(exception: BaseException, response) -> str:
    """The HTTP status of a response with an error status, else the exception's class name."""
    status = getattr(response, "status_code", 0) or 0
    return str(status) if status >= 400 else type(exception).__name__


class Plugin:
    """The harness state of one Locust process, bound to one module's spec and one event bus."""

    def __init__(self, spec: ModuleSpec, events: Events) -> None:
        self.spec, self.events = spec, events
        self.recorder = ExactRecorder()
        self.workers = merge.WorkerDeltas(self.recorder)
        self._invariants = Invariants(spec)
        self.environment: Environment | None = None
        self.parser = None
        self.observer: exporter.Observer | None = None
        self.arrivals: Arrivals | None = None
        self.stream_rates: dict[str, Callable[[Any], float]] = {}  # name -> its rate from the options
        self.streams: dict[str, Arrivals] = {}  # this test's running streams
        self.started_services: list[str] = []
        self.start = self.measured_start = self.end = 0.0
        self.cpu_at_measured_start = self.load_cpu_seconds = 0.0
        self.pending_results = False
        self.finishing: gevent.Greenlet | None = None
        self.fault_timers: list[gevent.Greenlet] = []
        self.knobs: tuple[Knob, ...] = ()  # this test's: the scenario's, with --knob over them
        self.refused = ""  # why this test's knobs could not be set: it has no results

    # --- the locustfile's API ---------------------------------------------------------------
    def invariant(self, *names: str, settle=None, settle_timeout_s: float = 30.0, drain: bool = True):
        """Decorator: register a check returning InvariantResults for these spec-declared names, run
        against the real stores when the test stops: after the target's in-flight requests have ended
        (unless `drain=False`: the check reads only the clients' logs) and `settle(environment)` says
        quiescent."""
        return self._invariants.register(*names, settle=settle, settle_timeout_s=settle_timeout_s, drain=drain)

    def arrival_stream(self, name: str, rate: Callable[[Any], float]) -> None:
        """Declare a second open-model arrival stream with its own rate (`rate(options)`, arrivals/s across
        all workers; 0 leaves it off), served by the users of a `Paced` class with `stream = name`: an
        abusive client at its own rate beside the --rate of the others, neither slowing the other down."""
        if name in self.stream_rates:
            raise ValueError(f"arrival stream {name!r} is already declared")
        self.stream_rates[name] = rate

    def tally(self, name: str, amount: int = 1) -> None:
        """Count something the invariants need; summed across workers on the master."""
        self.recorder.tallies[name] += amount

    def add_id(self, name: str, item: str) -> None:
        """Remember an id (an acknowledged write, say); the id sets of all workers are joined on the master."""
        self.recorder.add_id(name, item)

    def ids(self, name: str) -> set[str]:
        return self.recorder.ids.get(name, set())

    @property
    def options(self):
        return self.environment.parsed_options

    def knob(self, service: str, name: str, default):
        """The value this test sets `service`'s knob `name` to (the scenario's, or --knob), else `default`."""
        return knobs.value(self.knobs, service, name, default)

    # --- lifecycle ---------------------------------------------------------------------------
    def bind(self) -> None:
        for event, listener in ((self.events.init_command_line_parser, self.on_parser),
                                (self.events.init, self.on_init), (self.events.test_start, self.on_test_start),
                                (self.events.request, self.on_request),
                                (self.events.report_to_master, self.on_report_to_master),
                                (self.events.worker_report, self.on_worker_report),
                                (self.events.test_stop, self.on_test_stop), (self.events.quit, self.on_quit)):
            event.add_listener(listener)

    def on_parser(self, parser, **_) -> None:
        self.parser = parser
        options.add_options(parser, self.spec)

    def on_init(self, environment: Environment, **_) -> None:
        self.environment = environment
        environment.harness = self
        if self.parser is not None:
            options.apply_scenario(self.parser, self.options, self.spec)
        problems = options.resolve(self.options, self.spec)
        if problems:
            raise SystemExit("; ".join(problems))
        settings = get_settings()
        environment.host = environment.host or settings.target_url(self.spec.id, self.spec.port)
        self.observer = exporter.Observer(self.spec.id, self.options.variant)
        # Workers fire the request events, so each serves its own exporter: one per container in
        # compose, or the next free port for local `--processes` workers. The master exports users.
        exporter.serve(settings.loadgen_metrics_host, settings.loadgen_metrics_port,
                       tries=settings.loadgen_metrics_ports)
        exporter.DROPPED.labels(self.spec.id, self.options.variant)  # a 0 series: dashboards show the model
        if isinstance(environment.runner, WorkerRunner):
            return
        if isinstance(environment.runner, MasterRunner):
            environment.runner.register_message("harness_final", self._on_final_delta)
        self._export_users(environment)
        dashboard = settings.project_dir / "dashboards" / f"{self.spec.id}.json"
        if environment.web_ui is not None and dashboard.exists():
            live_tab.install(environment, live_tab.LiveDashboard(dashboard, self.spec.id, list(self.spec.variant_names),
                                                                 settings))
        if not self.options.no_stack:
            self.started_services = bootstrap.ensure_stack(self.spec, environment.host, settings)

    def on_quit(self, exit_code: int = 0, **_) -> None:
        """After Locust's own shutdown, when every worker has sent its last samples."""
        if self.pending_results:
            self._finish()
        if self.finishing is not None:
            self.finishing.join()
        bootstrap.stop_stack(self.started_services, get_settings())

    def on_test_start(self, environment: Environment, **_) -> None:
        self.start = time.time()
        self.workers.reset()
        self.recorder.reset(self.start + self.options.warmup)
        self.measured_start = self.recorder.measured_start
        # Workers learn the variant from the master's spawn message, and the web UI may change it.
        self.observer = exporter.Observer(self.spec.id, self.options.variant)
        self._phase_gauge(1)
        runner = environment.runner
        if not isinstance(runner, WorkerRunner):
            self._export_users(environment)
        if isinstance(runner, MasterRunner):
            if self.options.rate > 0 and runner.worker_count != self.options.expect_workers:
                log.warning("the arrival rate is split over --expect-workers=%d workers, but %d are connected",
                            self.options.expect_workers, runner.worker_count)
        elif self.options.rate > 0:
            self._start_arrivals()
        if not isinstance(runner, MasterRunner):
            self._start_streams()
        self.knobs, self.refused = knobs.resolve(self.spec, self.options.scenario, self.options.knob), ""
        if not isinstance(runner, WorkerRunner):  # once per test, before any user starts
            self._set_knobs()
        if not isinstance(runner, WorkerRunner) and self.options.started_file:
            merge.write_json(self.options.started_file, {"start": self.start, "measured_start": self.measured_start})
        gevent.spawn_later(self.options.warmup, self._end_warmup)
        if not isinstance(runner, WorkerRunner):
            self._mark_faults()

    def _export_users(self, environment: Environment) -> None:
        """The users gauge under the variant being loaded: the web UI's form may switch it between tests,
        and a variant not running reads 0, so a dashboard shows which one has the users."""
        variant = self.options.variant
        exporter.USERS.labels(self.spec.id, variant).set_function(
            lambda: environment.runner.user_count if environment.runner and self.options.variant == variant else 0)

    def _set_knobs(self) -> None:
        """A test whose knobs cannot be set measures something else: it stops, with no results and exit
        code 1 (so `harness run` fails the phase with this message)."""
        try:
            knobs.apply(self.spec, self.knobs, get_settings())
        except RuntimeError as exc:
            self.refused = str(exc)
            log.error("%s; stopping the test", exc)
            self.environment.process_exit_code = 1
            runner = self.environment.runner
            gevent.spawn(runner.quit if self.options.headless else runner.stop)

    def _mark_faults(self) -> None:
        """harness_fault follows the scenario's planned faults, for Grafana's annotations; `harness run`
        plays the faults themselves through the stack and records their real times in run.json."""
        o = self.options
        for fault in self.spec.scenario(o.scenario).faults:
            gauge = exporter.FAULT.labels(self.spec.id, o.variant, fault.service, fault.action)
            gauge.set(0)
            begin = o.warmup + fault.at_s
            self.fault_timers += [gevent.spawn_later(begin, gauge.set, 1),
                                  gevent.spawn_later(begin + fault.duration_s, gauge.set, 0)]

    def _phase_gauge(self, value: int) -> None:
        o = self.options
        exporter.PHASE.labels(self.spec.id, o.variant, o.run_id, str(o.phase)).set(value)

    def _start_arrivals(self) -> None:
        o = self.options
        share = 1.0 / max(1, o.expect_workers) if isinstance(self.environment.runner, WorkerRunner) else 1.0
        self.arrivals = Arrivals(
            o.rate * share, o.arrivals == "poisson", self.recorder,
            rate_fraction=lambda elapsed: rate_fraction(o.profile, elapsed, o.run_time),
            on_drop=exporter.DROPPED.labels(self.spec.id, o.variant).inc,
            stopping=lambda: self.environment.runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP))
        self.arrivals.start()
        log.info("open model (pid %d): %.1f arrivals/s (%s), %s users", os.getpid(), o.rate * share,
                 o.arrivals, o.num_users)

    def _start_streams(self) -> None:
        o = self.options
        share = 1.0 / max(1, o.expect_workers) if isinstance(self.environment.runner, WorkerRunner) else 1.0
        for name, rate_of in self.stream_rates.items():
            rate = rate_of(o) * share
            if rate <= 0:
                continue
            self.streams[name] = Arrivals(
                rate, o.arrivals == "poisson", self.recorder,
                rate_fraction=lambda elapsed: rate_fraction(o.profile, elapsed, o.run_time),
                on_drop=exporter.DROPPED.labels(self.spec.id, o.variant).inc,
                stopping=lambda: self.environment.runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP))
            self.streams[name].start()
            log.info("arrival stream %s (pid %d): %.1f arrivals/s", name, os.getpid(), rate)

    def _end_warmup(self) -> None:
        if not isinstance(self.environment.runner, WorkerRunner):
            self.environment.runner.stats.reset_all()  # the master's stats are the aggregate
        self.cpu_at_measured_start = _cpu_seconds()

    def on_request(self, request_type: str, name: str, response_time: float, exception, start_time=None,
                   context=None, response=None, **_) -> None:
        start = start_time if start_time is not None else time.time() - response_time / 1000
        intended = context.get("intended_start") if context else None
        reason = None if exception is None else failure_reason(exception, response)
        self.recorder.record(name, response_time, start, reason, intended)
        seconds = response_time / 1000 + (start - intended if intended is not None and start > intended else 0.0)
        self.observer.observe(name, request_type, seconds, reason is not None)

    def on_report_to_master(self, client_id: str, data: dict, **_) -> None:
        data["harness"] = self.recorder.take_delta()

    def on_worker_report(self, client_id: str, data: dict, **_) -> None:
        self.workers.add(client_id, data.get("harness", {}))

    def _on_final_delta(self, environment: Environment, msg, **_) -> None:
        self.workers.add(msg.node_id, msg.data, final=True)

    def on_test_stop(self, environment: Environment, **_) -> None:
        if not self.start:  # Locust fires test_stop at quit even when no test ran: nothing to report
            return
        self.end = time.time()
        if self.arrivals is not None:
            self.arrivals.stop()
            self.arrivals = None
        for stream in self.streams.values():
            stream.stop()
        self.streams.clear()
        self._phase_gauge(0)
        gevent.killall(self.fault_timers)
        self.fault_timers.clear()
        for fault in self.spec.scenario(self.options.scenario).faults:
            exporter.FAULT.labels(self.spec.id, self.options.variant, fault.service, fault.action).set(0)
        self.load_cpu_seconds = _cpu_seconds() - self.cpu_at_measured_start
        runner = environment.runner
        if not isinstance(runner, WorkerRunner):
            knobs.reset(self.spec, self.knobs, get_settings())
        if isinstance(runner, WorkerRunner):  # the samples the periodic reports have not carried yet
            runner.send_message("harness_final", {**self.recorder.take_delta(), "cpu_seconds": self.load_cpu_seconds})
            return
        if isinstance(runner, MasterRunner) and len(self.workers.finals) < runner.worker_count:
            # Stopped by --run-time or a signal, Locust's master fires test_stop before its workers stop,
            # then tells them to quit and stops listening half a second later: a worker slower than that
            # (a loaded machine) lost its last samples, all of them in a window shorter than its 3 s
            # reports. So the master stops its workers itself and waits here, still listening, for each
            # one's final samples; any still missing are written at quit and named in the results.
            self._collect_finals(runner)
            if len(self.workers.finals) < runner.worker_count:
                self.pending_results = True
                return
        # After the locustfile's own test_stop listeners (background writers stopped), not inside them.
        self.finishing = gevent.spawn(self._finish)

    def _collect_finals(self, runner: MasterRunner, timeout_s: float = FINALS_TIMEOUT_S) -> None:
        for client in runner.clients.all:
            if client.id not in self.workers.finals:
                runner.server.send_to_client(Message("stop", None, client.id))
        deadline = time.monotonic() + timeout_s
        while len(self.workers.finals) < runner.worker_count and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if len(self.workers.finals) < runner.worker_count:
            log.warning("%d of %d workers sent no final samples within %g s", runner.worker_count -
                        len(self.workers.finals), runner.worker_count, timeout_s)

    def _finish(self) -> None:
        self.pending_results = False
        o, distributed = self.options, isinstance(self.environment.runner, MasterRunner)
        if self.refused:
            print(f"no results: {self.refused}", flush=True)
            return
        invariants = self._invariants.run(self.environment, o.variant)
        meta = {"module": self.spec.id, "variant": o.variant, "scenario": o.scenario, "load": o.load or None,
                "profile": o.profile, "host": self.environment.host, "start": self.start,
                "measured_start": self.measured_start, "end": self.end, "users": o.num_users, "rate": o.rate or None,
                "knobs": knobs.record(self.knobs)}
        results = merge.document(self.recorder, meta, invariants, self.load_cpu_seconds + self.workers.cpu_seconds,
                                 self.workers.counts if distributed else None)
        print(merge.summary_text(results), flush=True)
        if o.results_file:
            merge.write_json(o.results_file, results)


class Paced:
    """Mixin for a locustfile's user class: with --rate, every task iteration waits for an arrival
    and its requests are timed from that arrival's intended start; without it, no think time.

    Put it first: `class Shopper(Paced, FastHttpUser)`, and call `super().on_start()` last. A class with
    `stream = "<name>"` waits for that arrival stream instead (`Plugin.arrival_stream`); while its stream
    is off (rate 0) the class has no schedule: leave it out of the test's user classes then.
    """

    _intended: float | None = None
    stream: str | None = None

    def wait_time(self) -> float:
        harness = self.environment.harness
        arrivals = harness.arrivals if self.stream is None else harness.streams.get(self.stream)
        if arrivals is not None:
            self._intended = arrivals.take()
        return 0.0

    def on_start(self) -> None:
        self.wait_time()  # the first iteration waits for an arrival too

    def context(self) -> dict:
        return {"intended_start": self._intended} if self._intended is not None else {}


def setup(spec: ModuleSpec, events: Events | None = None) -> Plugin:
    """Wire the harness into Locust for one module; a locustfile calls it once, at import.

    It binds a new Plugin to `events` (Locust's own bus by default); a second call for the same bus
    is an error, never a silent return of the first plugin.
    """
    events = events if events is not None else locust.events
    bound = getattr(events, "_harness_plugin", None)
    if bound is not None:
        raise RuntimeError(f"harness.loadgen.setup() was already called in this process (module {bound.spec.id}); "
                           "a locustfile calls it once, at import, and keeps the plugin it returns")
    plugin = Plugin(spec, events)
    plugin.bind()
    events._harness_plugin = plugin
    return plugin

