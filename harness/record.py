"""The run record: what run.json holds, as typed models. Written and read only by harness/results.py.

A module run (`Run`) is its plan's parameters, the environment, the spec's presentation, one `Phase`
per Locust process, and what the run concluded from them: the sweep curves, the per-variant
`VariantSummary` of each group, the claims' `ClaimVerdict`s, the `InvariantRow`s and the faults.
A bench run (`BenchRun`, harness/bench.py) starts with the same keys and has its own measurements.

Every model keeps keys it does not declare (extra="allow"), so nothing a run measured is dropped,
and numbers keep their JSON type (int stays int), so a stored run re-renders and compares as it was.
Whether an invariant is enforced is decided once, when its result is recorded; a run stored before
the field existed gets it at load, in `load`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_serializer, model_validator

Number = int | float
Value = int | float | dict | None  # a number, or a censored value ({"value": 150, "censor": "lt"})


class Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    _order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler):
        record = handler(data)
        if isinstance(data, dict):
            record._order = tuple(data)
        return record

    @model_serializer(mode="wrap")
    def _in_order(self, handler):
        """Keys in the order they were read (then the ones set since), so a run re-renders as it was."""
        data = handler(self)
        if self._order and isinstance(data, dict):
            position = {key: i for i, key in enumerate(self._order)}
            data = dict(sorted(data.items(), key=lambda item: position.get(item[0], len(position))))
        return data

    def get(self, key: str, default: Any = None) -> Any:
        """A key by name, as the dict it was read from had it (a field left at its default is absent):
        the metrics a spec names (server metrics, invariant totals) are read this way."""
        if key in type(self).model_fields:
            return getattr(self, key) if key in self.model_fields_set else default
        return (self.model_extra or {}).get(key, default)

    def has(self, key: str) -> bool:
        """Whether the record holds `key` (set, even to None), as the dict it was read from did."""
        return key in self.model_fields_set or key in (self.model_extra or {})

    def dump(self) -> dict:
        """As run.json holds it: only the keys that were set (nothing invented for an old run), in the
        order they were read, or declared for a record built in code."""
        return self.model_dump(exclude_unset=True)


class Fault(Record):
    """One played fault: planned, begun and ended (epoch s), or the error that kept it from happening."""

    service: str
    action: str
    planned_at_s: Number | None = None
    duration_s: Number | None = None
    begin: Number | None = None
    end: Number | None = None
    error: str | None = None


class RunFault(Fault):
    """A fault at run level: the phase's record of it, and which phase played it."""

    phase: int


class InvariantResult(Record):
    """One invariant check in one phase; `enforced`: the spec claims it for the phase's variant."""

    name: str
    value: Number
    expected: str
    passed: bool
    detail: str = ""
    enforced: bool


class Noise(Record):
    """The host over a phase's measured window (harness/noise.py): CPU-seconds over the snapshots'
    window, shares of its capacity (cores x window), and the services whose CPU could not be told
    from foreign load."""

    window_s: Number
    start_offset_s: Number | None = None
    end_offset_s: Number | None = None
    snapshots: int | None = None
    capacity_cpu_s: Number | None = None
    load1: Number | None = None
    load1_max: Number | None = None
    steal_share: Number | None = None
    busy_cpu_s: Number | None = None
    run_cpu_s: Number | None = None
    kernel_cpu_s: Number | None = None
    foreign_cpu_s: Number | None = None
    foreign_share: Number | None = None
    unowned: list[str] = Field(default_factory=list)


class Phase(Record):
    """One Locust process: its plan (harness.plan.PhaseSpec), its window, counts, latencies and checks."""

    index: int
    scenario: str
    variant: str
    repetition: int | None = None
    users: int | None = None
    duration_s: Number | None = None
    warmup_s: Number | None = None
    rate: Number | None = 0.0
    load: str = ""
    group: str = ""
    step: int | None = None
    error_budget: Number | None = None
    start: Number | None = None
    measured_start: Number | None = None
    end: Number | None = None
    csv_prefix: str | None = None
    requests: int = 0
    failures: int = 0
    errors: dict[str, int] = Field(default_factory=dict)
    failure_ratio: Number | None = None
    rps: Number | None = None
    latency_ms: dict[str, Number | None] = Field(default_factory=dict)
    timeline: list[list[Number | None]] = Field(default_factory=list)
    server: dict[str, Value] = Field(default_factory=dict)
    load_cpu_us_per_request: Number | None = None
    invariants: list[InvariantResult] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    noise: Noise | None = None  # absent in runs made before it was sampled
    model: str | None = None
    arrivals: Any = None
    dropped: int | None = None
    schedule_lag_ms: dict[str, Number | None] | None = None
    service_latency_ms: dict[str, Number | None] | None = None
    over_budget: bool = False
    fault_availability: Value = None
    recovery_s: Value = None
    error: str | None = None

    @property
    def group_name(self) -> str:
        """The summary group this phase belongs to: "<scenario>" or "<scenario>.<load>"."""
        return self.group or self.scenario


class VariantSummary(Record):
    """A variant's medians over its repetitions in one group. The spec's server metrics and invariant
    totals are undeclared keys, read by name with `get`."""

    repetitions: int | None = None
    requests: int = 0
    failures: int = 0
    errors: dict[str, int] | None = None
    failure_ratio: Number | None = None
    rps: Value = None
    p50_ms: Value = None
    p95_ms: Value = None
    p99_ms: Value = None
    p999_ms: Value = None
    max_ms: Value = None
    knee_rate: Value = None


class ClaimVerdict(Record):
    """harness.claims.Verdict as stored; `status` may be an older run's pass/fail/skipped. `demonstration`
    says why a verdict is no evidence (empty for a claim, and in runs stored before demonstrations)."""

    id: str
    sentence: str = ""
    expression: str = ""
    scenario: str = ""
    status: str
    measured: Value = None
    baseline: Value = None
    ratio: Value = None
    threshold: Number | None = None
    detail: str | None = ""
    demonstration: str = ""


class InvariantRow(Record):
    """One invariant in one (group, variant), summed over repetitions; a violation not enforced is a finding."""

    name: str
    scenario: str | None = None
    variant: str | None = None
    value: Number | None = None
    expected: str = ""
    passed: bool = False
    enforced: bool
    detail: str = ""

    @property
    def status(self) -> str:
        return "held" if self.passed else "violated" if self.enforced else "finding"


class Environment(Record):
    """What the numbers were measured on; each service's version is an undeclared key."""

    cpu_count: int | None = None
    cpu_model: str | None = None
    platform: str | None = None
    python: str | None = None
    locust: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None


class Run(Record):
    """A module run, in run.json's key order."""

    run_id: str
    module: str
    title: str | None = None
    created: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    environment: Environment = Field(default_factory=Environment)
    presentation: dict[str, Any] | None = None
    phases: list[Phase] = Field(default_factory=list)
    curves: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, dict[str, VariantSummary]] = Field(default_factory=dict)
    claims: list[ClaimVerdict] = Field(default_factory=list)
    invariants: list[InvariantRow] = Field(default_factory=list)
    faults: list[RunFault] = Field(default_factory=list)
    passed: bool | None = None
    error: str | None = None
    finished: str | None = None
    duration_s: Number | None = None

    @property
    def name(self) -> str:
        return self.title or self.module or "run"


class BenchRun(Record):
    """A `harness bench` run (harness/bench.py): its measurements and the two ratios' verdicts."""

    kind: Literal["bench"] = "bench"
    run_id: str
    module: str
    title: str | None = None
    created: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    hot_path: dict[str, Any] = Field(default_factory=dict)
    exporter_port: int | None = None
    environment: Environment = Field(default_factory=Environment)
    measurements: list[dict[str, Any]] = Field(default_factory=list)
    target: dict[str, Any] | None = None
    load: dict[str, Any] | None = None
    passed: bool | None = None
    error: str | None = None
    finished: str | None = None
    duration_s: Number | None = None


def load(data: dict) -> Run | BenchRun:
    """A run.json's content as its typed record. Old shapes: no `kind` is a module run, and an
    invariant without `enforced` was enforced (the gate of that time failed on every violation)."""
    if data.get("kind") == "bench":
        return BenchRun.model_validate(data)

    def enforced(results: list[dict]) -> list[dict]:
        return [{**result, "enforced": result.get("enforced", True)} for result in results]

    data = {**data}
    if data.get("phases"):
        data["phases"] = [{**p, "invariants": enforced(p["invariants"])} if p.get("invariants") else p
                          for p in data["phases"]]
    if data.get("invariants"):
        data["invariants"] = enforced(data["invariants"])
    return Run.model_validate(data)
