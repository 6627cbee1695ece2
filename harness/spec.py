"""The module contract: one typed spec per curriculum module, validated when it loads.

A module declares itself once, as data, in `harness/modules/<id>.py` (`SPEC = ModuleSpec(...)`):
its variants, scenarios (loads, faults, error budget), claims, server metrics, summary columns,
invariants and settings. The CLI, the run pipeline and the report read only this; the locustfile
imports it for its variants, scenarios and claims; the target (which imports nothing from harness/)
keeps its own routes, and the contract test proves they match. Nothing here imports Locust.

Validation errors name the module and the field: `module spec <id>: scenarios.1.loads.0.rate: ...`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings

from harness.claims import Claim

ID = r"^[a-z][a-z0-9_]*$"
# Metrics every run measures for every variant, whatever the module: claims and columns may name them.
GENERIC_METRICS: dict[str, tuple[str, str]] = {  # key -> (label, format)
    "rps": ("rps", "num"), "p50_ms": ("p50 ms", "num"), "p95_ms": ("p95 ms", "num"), "p99_ms": ("p99 ms", "num"),
    "p999_ms": ("p99.9 ms", "num"), "max_ms": ("max ms", "num"), "requests": ("requests", "num"),
    "failures": ("failures", "num"), "failure_ratio": ("failure ratio", "percent"),
    "cpu_ms_per_request": ("server CPU ms/req", "num"), "load_cpu_us_per_request": ("load-gen CPU us/req", "num"),
    "target_rate": ("target rate/s", "num"), "dropped": ("dropped arrivals", "num"),
    "service_p99_ms": ("service p99 ms", "num"), "schedule_lag_p99_ms": ("schedule lag p99 ms", "num"),
    "knee_rate": ("knee rate/s", "num"),
    # phases with a fault: share of requests answered without error while it lasted, and seconds from
    # its end until the per-second throughput is back to its pre-fault median with no failures
    "fault_availability": ("availability during fault", "percent"), "recovery_s": ("recovery s", "num"),
}
DEFAULT_COLUMNS = ("rps", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "failures", "cpu_ms_per_request",
                   "load_cpu_us_per_request", "target_rate", "dropped", "service_p99_ms", "schedule_lag_p99_ms",
                   "knee_rate")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Variant(_Frozen):
    name: str = Field(pattern=ID)
    sentence: str = Field(min_length=1, description="what this variant stands for, in one sentence")


class Load(_Frozen):
    """One load a scenario runs under: the closed model (rate 0) or an arrival rate (open model)."""

    name: str = Field(pattern=ID, description="stable name; claims say `<scenario>.<name>`")
    rate: float = Field(default=0.0, ge=0, description="arrivals/s; 0 is the closed model")
    users: int | None = Field(default=None, ge=1, description="closed: the users; open: the pool serving arrivals")


class Sweep(_Frozen):
    """Rising arrival rates per variant until its p99 bound breaks: each variant's knee on this machine."""

    start_rate: float = Field(default=100.0, gt=0)
    factor: float = Field(default=1.5, gt=1)
    max_steps: int = Field(default=8, ge=2, le=30)
    p99_bound_ms: float = Field(default=100.0, gt=0)
    users: int = Field(default=300, ge=1)
    time_cap_s: float = Field(default=300.0, gt=0, description="the whole sweep stops rising after this")


class Fault(_Frozen):
    """At second `at_s` of the measured window, kill / stop (SIGSTOP) / restart a service of the stack
    for `duration_s` seconds; run by the stack that owns the pid, recorded in run.json."""

    service: str = Field(pattern=ID, description="a service of the module's stack, or the module's target")
    action: Literal["kill", "stop", "restart"]
    at_s: float = Field(ge=0)
    duration_s: float = Field(gt=0, le=600)


class Knob(_Frozen):
    """A setting of the system under test that a scenario turns for its phases: the load side sets it on
    `service` (the module's target, or one of its processes with a port) through that service's
    `PUT /admin/knobs` when a test starts, and puts every knob back to its default when the test stops.
    The service validates `name` and `value` (a 4xx names the problem); run.json records each phase's."""

    service: str = Field(pattern=ID, description="the module's target (its id) or one of its processes")
    name: str = Field(pattern=ID, description="a knob the service declares")
    value: bool | int | float | str


class Limit(_Frozen):
    """A resource limit on a stack service for a scenario's phases (harness/limits.py): `cpus` CPU seconds
    per second for every process of `service`, so the store is the bottleneck as on a system whose app
    tier scales out. Where it cannot be set, the scenario is not run, with the reason."""

    service: str = Field(pattern=ID, description="a store of the stack (postgres, redis, kafka, s3)")
    cpus: float = Field(gt=0, le=64)


class Scenario(_Frozen):
    name: str = Field(pattern=ID)
    description: str = ""
    variants: tuple[str, ...] | None = Field(default=None, description="None: every variant of the module")
    users: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    warmup_s: float | None = Field(default=None, ge=0)
    loads: tuple[Load, ...] = Field(default=(), description="empty: one closed-model load at the run's users")
    sweep: Sweep | None = None
    error_budget: float = Field(default=0.01, ge=0, le=1, description="failed share of requests a phase may have")
    error_budgets: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, description="a variant's own budget where it fails by design (retries exhausted)")
    faults: tuple[Fault, ...] = ()
    knobs: tuple[Knob, ...] = Field(default=(), description="settings of the target or a process for its phases")
    limits: tuple[Limit, ...] = Field(default=(), description="resource limits on stores for its phases")
    options: tuple[str, ...] = Field(default=(), description="extra Locust arguments for this scenario's phases")

    @model_validator(mode="after")
    def _one_kind_of_load(self) -> Scenario:
        if self.sweep is not None and self.loads:
            raise ValueError("a scenario has either loads or a sweep, not both")
        names = [load.name for load in self.loads]
        if len(set(names)) != len(names):
            raise ValueError(f"load names must be unique, got {names}")
        knobs = [f"{knob.service}.{knob.name}" for knob in self.knobs]
        if len(set(knobs)) != len(knobs):
            raise ValueError(f"knobs: each one is set once, got {knobs}")
        if self.sweep is not None and self.error_budgets:
            raise ValueError("error_budgets: a sweep has one budget (its failures end a variant's climb); "
                             "set error_budget")
        return self

    def budget(self, variant: str) -> float:
        """The failed share of requests a phase of `variant` may have: its own budget, else the scenario's."""
        return self.error_budgets.get(variant, self.error_budget)


class ServerMetric(_Frozen):
    """A server-side number per variant over each phase's measured window, from Prometheus.

    kind "ratio": increase(numerator) / increase(denominator) (counters); kind "increase": increase of
    one counter; kind "rate": its increase per second of the window; kind "gauge": a gauge reduced over
    the window (max, min, avg, p99 of its 1-second samples, or last; "rise": its max over the window minus
    its value when the window starts, how much the window raised it).
    Selectors are plain metric selectors; `module` and `variant` labels are added to each.
    """

    name: str = Field(pattern=ID)
    label: str = Field(min_length=1)
    unit: str = ""
    kind: Literal["ratio", "increase", "rate", "gauge"] = "ratio"
    numerator: str = Field(min_length=1, description="the counter (ratio, increase) or the gauge")
    denominator: str | None = None
    reduce: Literal["max", "min", "avg", "p99", "last", "rise"] = "max"
    format: Literal["num", "percent"] = "num"

    @model_validator(mode="after")
    def _denominator_for_ratio(self) -> ServerMetric:
        if (self.kind == "ratio") != (self.denominator is not None):
            raise ValueError("a ratio needs a denominator, and only a ratio has one")
        return self


class InvariantSpec(_Frozen):
    """A correctness check run against the real stores after every phase (registered by the locustfile).

    A variant outside `enforced_for` does not claim it (a naive baseline): its violations are reported
    as the finding and do not fail the run.
    """

    name: str = Field(pattern=ID)
    sentence: str = Field(min_length=1)
    enforced_for: tuple[str, ...] | None = Field(default=None, description="None: every variant")

    def enforced(self, variant: str) -> bool:
        return self.enforced_for is None or variant in self.enforced_for


@dataclass(frozen=True)
class InvariantResult:
    """What an invariant check returns for one phase. `value` counts violations (0 when it held)."""

    name: str
    value: float
    expected: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class LinePlot(_Frozen):
    """Metrics against a parameter that differs between scenarios (a workload option such as the number
    of hot rows): one line per variant, one point per scenario (or `scenario.load`) the run measured."""

    title: str = Field(min_length=1)
    x_label: str = Field(min_length=1)
    x: tuple[tuple[str, float], ...] = Field(min_length=2, description="(scenario or scenario.load, x value)")
    metrics: tuple[str, ...] = Field(min_length=1, description="one panel each, y against x")
    log_x: bool = False


class Process(_Frozen):
    """A module's own process beside its target (a consumer, a publisher), started after it."""

    name: str = Field(pattern=ID)
    app: str = Field(pattern=r"^[\w.]+$", description="python -m <app>, from the project directory")
    port: int | None = Field(default=None, ge=1, le=65535, description="health is GET /healthz here, if set")


REQUEST_METRIC_KEYS = {"rps": ("/s", "num"), "p50_ms": ("p50 ms", "num"), "p95_ms": ("p95 ms", "num"),
                       "p99_ms": ("p99 ms", "num")}


class RequestMetric(_Frozen):
    """A request of the workload besides `latency_of` whose rate and latency are metrics of their own, from
    the exact recorder (a job's completion, recorded as its own request timed from the job's submission):
    `<name>_rps`, `<name>_p50_ms`, `<name>_p95_ms`, `<name>_p99_ms`, over successful ones in the measured
    window. None of them is measured (no value) when the request never succeeded in the window."""

    name: str = Field(pattern=ID, description="the metrics' prefix")
    request: str = Field(min_length=1, description="the request's name in the locustfile's stats")
    label: str = Field(min_length=1)

    @property
    def metrics(self) -> dict[str, tuple[str, str]]:
        return {f"{self.name}_{key}": (f"{self.label} {label}", fmt)
                for key, (label, fmt) in REQUEST_METRIC_KEYS.items()}


class HotPath(_Frozen):
    """What `harness bench` measures for a module (harness/bench.py): its fast path against a trivial
    endpoint of the same target under wrk, and the module's locustfile against a bare FastHttpUser.

    `path` is a GET under `/<variant>` with a `{key}` taken from 1..`keys` (each is requested once
    before measuring, so a cache holds them all); `locust_args` make the module's locustfile send
    only those requests (reads, over the same keys), as the bare locustfile does."""

    fast: str = Field(description="the variant whose fast path is measured (a cache hit, say)")
    floor: str = Field(description="the variant that does no I/O: the trivial endpoint")
    path: str = Field(pattern=r"^/\S*\{key\}\S*$", description="request path under /<variant>, with {key}")
    name: str = Field(min_length=1, description="the request's name in the locustfile's stats")
    keys: int = Field(default=100, ge=1, le=1_000_000)
    locust_args: tuple[str, ...] = ()
    min_ratio: float = Field(default=0.6, gt=0, description="fast path throughput at least this x the floor's")
    max_load_ratio: float = Field(default=1.10, ge=1, description="load-side CPU per request at most this x bare")


class ModuleSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    id: str = Field(pattern=ID)
    title: str = Field(min_length=1)
    port: int = Field(ge=1024, le=65535, description="the target's port on the embedded stack")
    services: tuple[str, ...] = Field(description="stores the target needs, in start order")
    processes: tuple[Process, ...] = ()
    variants: tuple[Variant, ...] = Field(min_length=1)
    default_variants: tuple[str, ...] = ()
    scenarios: tuple[Scenario, ...] = Field(min_length=1)
    default_scenarios: tuple[str, ...] = ()
    main_scenario: str = Field(default="", description="the one the report's plots show; default: the first")
    repeat: int = Field(default=2, ge=1, le=20, description="repetitions `harness run` makes unless told (--repeat)")
    latency_of: str = Field(default="Aggregated", description="the request whose latency the claims speak of")
    claims: tuple[Claim, ...] = ()
    server_metrics: tuple[ServerMetric, ...] = ()
    request_metrics: tuple[RequestMetric, ...] = Field(default=(), description="requests measured beside latency_of")
    invariants: tuple[InvariantSpec, ...] = ()
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    compare: tuple[str, ...] = ("rps", "p50_ms", "p95_ms", "p99_ms")
    progress: tuple[str, ...] = Field(default=(), description="metrics printed in the CLI's line per phase")
    bar_plots: tuple[str, ...] = Field(default=(), description="metrics drawn as one bar chart each")
    line_plots: tuple[LinePlot, ...] = Field(default=(), description="metrics against a per-scenario parameter")
    settings: type[BaseSettings] | None = Field(default=None, description="the module's own HARNESS_<ID>_* knobs")
    hot_path: HotPath | None = Field(default=None, description="what `harness bench` measures; None: no bench")

    @model_validator(mode="after")
    def _cross_references(self) -> ModuleSpec:
        variants, scenarios = self.variant_names, {s.name: s for s in self.scenarios}
        metrics = {**GENERIC_METRICS, **{m.name: m for m in self.server_metrics},
                   **{i.name: i for i in self.invariants}, **self.request_metric_labels}
        problems = []

        def need(what: str, names, known) -> None:
            problems.extend(f"{what}: unknown {n!r} (known: {', '.join(known)})" for n in names if n not in known)

        for field, names in (("variants", [v.name for v in self.variants]),
                             ("scenarios", list(scenarios)), ("claims", [c.id for c in self.claims]),
                             ("server_metrics", [m.name for m in self.server_metrics])):
            if len(set(names)) != len(names):
                problems.append(f"{field}: names must be unique, got {names}")
        need("default_variants", self.default_variants, variants)
        need("default_scenarios", self.default_scenarios, scenarios)
        if self.main_scenario:
            need("main_scenario", [self.main_scenario], scenarios)
        for scenario in self.scenarios:
            need(f"scenarios.{scenario.name}.variants", scenario.variants or (), variants)
            services = (*self.services, self.id, *(p.name for p in self.processes))
            need(f"scenarios.{scenario.name}.faults.service", [f.service for f in scenario.faults], services)
            need(f"scenarios.{scenario.name}.limits.service", [lim.service for lim in scenario.limits], self.services)
            need(f"scenarios.{scenario.name}.knobs.service", [k.service for k in scenario.knobs], self.knob_services)
            need(f"scenarios.{scenario.name}.error_budgets", scenario.error_budgets,
                 scenario.variants or variants)
        for claim in self.claims:
            scenario_name, _, load = claim.scenario.partition(".")
            need(f"claims.{claim.id}.scenario", [scenario_name], scenarios)
            if scenario_name in scenarios:
                scenario = scenarios[scenario_name]
                if load:
                    need(f"claims.{claim.id}.scenario load", [load], [x.name for x in scenario.loads])
                elif len(scenario.loads) > 1:
                    problems.append(f"claims.{claim.id}.scenario: {scenario_name} has several loads; say "
                                    f"{scenario_name}.<load> ({', '.join(x.name for x in scenario.loads)})")
                need(f"claims.{claim.id}.variants", claim.variants[:1], scenario.variants or variants)
                if claim.baseline_scenario is None:
                    need(f"claims.{claim.id}.variants", claim.variants[1:], scenario.variants or variants)
            if claim.baseline_scenario is not None:
                base_name, _, base_load = claim.baseline_scenario.partition(".")
                need(f"claims.{claim.id}.baseline_scenario", [base_name], scenarios)
                if base_name in scenarios:
                    base = scenarios[base_name]
                    if base_load:
                        need(f"claims.{claim.id}.baseline_scenario load", [base_load], [x.name for x in base.loads])
                    elif len(base.loads) > 1:
                        problems.append(f"claims.{claim.id}.baseline_scenario: {base_name} has several loads")
                    need(f"claims.{claim.id}.baseline", claim.variants[1:], base.variants or variants)
            need(f"claims.{claim.id}.metric", [claim.metric, *filter(None, [claim.against])], metrics)
        if self.hot_path is not None:
            need("hot_path.fast", [self.hot_path.fast], variants)
            need("hot_path.floor", [self.hot_path.floor], variants)
        for invariant in self.invariants:
            need(f"invariants.{invariant.name}.enforced_for", invariant.enforced_for or (), variants)
        for field in ("columns", "compare", "progress", "bar_plots"):
            need(field, getattr(self, field), metrics)
        for plot in self.line_plots:
            need("line_plots.x", [group.partition(".")[0] for group, _ in plot.x], scenarios)
            need("line_plots.metrics", plot.metrics, metrics)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- derived views -----------------------------------------------------------------------
    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise KeyError(name)

    def scenario_variants(self, name: str) -> list[str]:
        return list(self.scenario(name).variants or self.variant_names)

    @property
    def knob_services(self) -> dict[str, int]:
        """The services a knob may name, with their base ports: the target and every process with a port
        (each serves PUT /admin/knobs there)."""
        return {self.id: self.port, **{p.name: p.port for p in self.processes if p.port}}

    @property
    def target_app(self) -> str:
        return f"targets.{self.id}:app"

    @property
    def env_prefix(self) -> str:
        """Module settings are read from HARNESS_<ID>_* by the module itself (target and locustfile)."""
        return f"HARNESS_{self.id.upper()}_"

    @property
    def request_metric_labels(self) -> dict[str, tuple[str, str]]:
        return {key: label for metric in self.request_metrics for key, label in metric.metrics.items()}

    def metric_label(self, key: str) -> tuple[str, str]:
        """(label, format) of a summary metric: generic, per request, server-side or invariant."""
        if key in GENERIC_METRICS:
            return GENERIC_METRICS[key]
        if key in self.request_metric_labels:
            return self.request_metric_labels[key]
        for metric in self.server_metrics:
            if metric.name == key:
                return (f"{metric.label} ({metric.unit})" if metric.unit else metric.label), metric.format
        return key.replace("_", " "), "num"

    def presentation(self) -> dict:
        """What the report needs of the spec, stored in run.json so a run re-renders on its own."""
        return {"main_scenario": self.main_scenario or (self.default_scenarios or [self.scenarios[0].name])[0],
                "columns": [[k, *self.metric_label(k)] for k in self.columns],
                "compare": list(self.compare), "progress": list(self.progress),
                "bar_plots": [[k, *self.metric_label(k)] for k in self.bar_plots],
                "line_plots": [{"title": p.title, "x_label": p.x_label, "x": [list(x) for x in p.x], "log_x": p.log_x,
                                "metrics": [[k, *self.metric_label(k)] for k in p.metrics]} for p in self.line_plots],
                "variants": {v.name: v.sentence for v in self.variants}}
