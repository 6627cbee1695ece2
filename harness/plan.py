"""What a run will do: module spec, variants, scenarios, load model and profile, as phases.

Everything comes from the module's spec (harness/spec.py): each scenario's variants, loads, sweep,
faults and error budget. Phases are variant x repetition, interleaved (A B C A B C) so that drift
hits every variant alike; a scenario with several loads runs each as its own group
("<scenario>.<load>"). A swept scenario's phases are not known in advance: its rates rise per
variant as the run measures them (harness/sweep.py), so the plan holds its Sweep, not its phases.
Options given on the command line override the scenario's values for every phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import limits
from harness.shapes import PROFILES
from harness.spec import ModuleSpec, Scenario, Sweep

DEFAULT_USERS, DEFAULT_DURATION_S, DEFAULT_WARMUP_S = 32, 20.0, 5.0


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class PhaseSpec:
    index: int
    scenario: str
    variant: str
    repetition: int
    users: int
    duration_s: float
    warmup_s: float
    rate: float = 0.0  # arrivals/s for the open model; 0 is the closed model
    load: str = ""  # the load's name in a scenario with several
    group: str = ""  # the summary this phase belongs to: "<scenario>" or "<scenario>.<load>"
    step: int | None = None  # a sweep's step (its rate's index); None outside sweeps
    error_budget: float = 0.01
    knobs: tuple[dict, ...] = ()  # the scenario's knobs ({service, name, value}), set on the system under test

    @property
    def slug(self) -> str:
        step = f"_r{self.rate:g}" if self.step is not None else ""
        return f"{self.index:02d}_{(self.group or self.scenario).replace('.', '_')}{step}_{self.variant}"


@dataclass
class Plan:
    spec: ModuleSpec
    variants: list[str]
    scenarios: list[str]
    profile: str = "steady"
    users: int | None = None  # None: as each scenario says
    duration_s: float | None = None
    warmup_s: float | None = None
    repeat: int = 2
    model: str | None = None  # closed | open | None: as each scenario says
    rate: float | None = None  # open model at this rate for every load; a sweep starts here
    arrivals: str = "fixed"
    knee_p99_ms: float | None = None  # a sweep's p99 bound, instead of the scenario's
    not_run: dict[str, str] = field(default_factory=dict)  # scenario -> why it cannot run here (its limits)
    sweep_cap_s: float | None = None  # a sweep pass's time cap, instead of the scenario's
    processes: int = 1  # Locust worker processes on this machine (its own distributed mode)
    variants_chosen: bool = True  # False: each scenario runs the variants it names, else the defaults
    locust_args: list[str] = field(default_factory=list)

    def scenario_variants(self, name: str) -> list[str]:
        """The variants chosen on the command line that the scenario has; without a choice, the ones
        the scenario names for itself, else the module's defaults (else all of its own)."""
        own = self.spec.scenario_variants(name)
        chosen = [v for v in self.variants if v in own]
        if self.variants_chosen:
            return chosen
        return own if self.spec.scenario(name).variants is not None else (chosen or own)

    def _timing(self, scenario: Scenario) -> tuple[float, float]:
        duration = self.duration_s or scenario.duration_s or DEFAULT_DURATION_S
        warmup = self.warmup_s if self.warmup_s is not None else scenario.warmup_s
        return duration, (warmup if warmup is not None else DEFAULT_WARMUP_S)

    def sweep(self, name: str) -> Sweep | None:
        sweep = self.spec.scenario(name).sweep
        if sweep is None:
            return None
        update = {k: v for k, v in (("start_rate", self.rate), ("p99_bound_ms", self.knee_p99_ms),
                                    ("time_cap_s", self.sweep_cap_s), ("users", self.users)) if v}
        return sweep.model_copy(update=update)

    def phases(self, name: str, first_index: int = 1) -> list[PhaseSpec]:
        """A fixed scenario's phases, numbered from first_index; [] for a sweep (see sweep_phase)."""
        scenario = self.spec.scenario(name)
        if scenario.sweep is not None:
            return []
        duration, warmup = self._timing(scenario)
        loads = [(load.name, load.rate, load.users) for load in scenario.loads] or [("", 0.0, None)]
        specs = []
        for repetition in range(1, self.repeat + 1):
            for load, rate, users in loads:
                rate = 0.0 if self.model == "closed" else (self.rate or rate)
                group = f"{name}.{load}" if len(loads) > 1 else name
                for variant in self.scenario_variants(name):
                    specs.append(PhaseSpec(first_index + len(specs), name, variant, repetition,
                                           self.users or users or scenario.users or DEFAULT_USERS, duration,
                                           warmup, rate, load if len(loads) > 1 else "", group,
                                           error_budget=scenario.budget(variant), knobs=_knobs(scenario)))
        return specs

    def sweep_phase(self, name: str, variant: str, repetition: int, step: int, rate: float,
                    index: int) -> PhaseSpec:
        scenario, sweep = self.spec.scenario(name), self.sweep(name)
        duration, warmup = self._timing(scenario)
        return PhaseSpec(index, name, variant, repetition, sweep.users, duration, warmup, rate, "", name, step,
                         scenario.budget(variant), _knobs(scenario))

    def estimate_s(self) -> float:
        """Seconds of load the run will take at most (sweeps at their cap), for a progress bar."""
        total = 0.0
        for name in self.scenarios:
            if (sweep := self.sweep(name)) is not None:
                duration, warmup = self._timing(self.spec.scenario(name))
                full = sweep.max_steps * len(self.scenario_variants(name)) * (duration + warmup)
                total += self.repeat * min(full, sweep.time_cap_s + len(self.scenario_variants(name)) * duration)
            else:
                total += sum(p.duration_s + p.warmup_s for p in self.phases(name))
        return total

    def parameters(self) -> dict:
        variants = dict.fromkeys(v for name in self.scenarios for v in self.scenario_variants(name))
        return {"variants": list(variants), "scenarios": self.scenarios,
                **({"not_run": self.not_run} if self.not_run else {}), "profile": self.profile,
                "model": self.model, "rate": self.rate, "arrivals": self.arrivals, "knee_p99_ms": self.knee_p99_ms,
                "sweep_cap_s": self.sweep_cap_s, "processes": self.processes, "users": self.users,
                "duration_s": self.duration_s, "warmup_s": self.warmup_s, "repeat": self.repeat,
                "latency_of": self.spec.latency_of, "locust_args": self.locust_args,
                "sweeps": {n: s.model_dump() for n in self.scenarios if (s := self.sweep(n)) is not None}}


def _knobs(scenario: Scenario) -> tuple[dict, ...]:
    return tuple(knob.model_dump() for knob in scenario.knobs)


def make_plan(spec: ModuleSpec, variants: list[str] | None = None, scenarios: list[str] | None = None,
              **options) -> Plan:
    """Check every choice against the module's spec, with messages that list the valid ones."""
    known_scenarios = [s.name for s in spec.scenarios]
    for name, given, known in (("variant", variants, spec.variant_names), ("scenario", scenarios, known_scenarios)):
        unknown = [g for g in given or [] if g not in known]
        if unknown:
            raise PlanError(f"unknown {name} {', '.join(unknown)} for {spec.id}; known: {', '.join(known)}")
    _check_options(options)
    plan = Plan(spec, list(variants or spec.default_variants or spec.variant_names),
                list(scenarios or spec.default_scenarios or known_scenarios), variants_chosen=bool(variants),
                **options)
    plan.scenarios = [s for s in plan.scenarios if plan.scenario_variants(s)]
    limit_problem = limits.unavailable()
    plan.not_run = {s: limit_problem for s in plan.scenarios if spec.scenario(s).limits and limit_problem}
    plan.scenarios = [s for s in plan.scenarios if s not in plan.not_run]
    if not plan.scenarios and plan.not_run:
        raise PlanError(f"no phase to run: {'; '.join(f'{s}: {why}' for s, why in plan.not_run.items())}")
    if not plan.scenarios:
        raise PlanError(f"no phase to run: scenarios {scenarios or known_scenarios} have none of the variants "
                        f"{plan.variants}")
    for name in plan.scenarios:
        _check_scenario(plan, spec.scenario(name))
    return plan


def _check_options(options: dict) -> None:
    if options.get("profile", "steady") not in PROFILES:
        raise PlanError(f"unknown profile {options['profile']!r}; known: {', '.join(PROFILES)}")
    for name, low in (("users", 1), ("duration_s", 1), ("repeat", 1), ("warmup_s", 0), ("knee_p99_ms", 0.001),
                      ("processes", 1), ("sweep_cap_s", 1)):
        if options.get(name) is not None and options[name] < low:
            raise PlanError(f"{name.removesuffix('_s')} must be at least {low}, got {options[name]}")
    if options.get("rate") is not None and options["rate"] <= 0:
        raise PlanError(f"--rate must be > 0 arrivals/s, got {options['rate']:g}")
    if options.get("model") not in (None, "open", "closed"):
        raise PlanError(f"model must be open or closed, got {options['model']!r}")
    if options.get("model") == "closed" and options.get("rate"):
        raise PlanError("--rate sets arrivals per second, which is the open model; drop --model closed")
    if options.get("arrivals", "fixed") not in ("fixed", "poisson"):
        raise PlanError(f"arrivals must be fixed or poisson, got {options['arrivals']!r}")


def _check_scenario(plan: Plan, scenario: Scenario) -> None:
    if scenario.sweep is not None and plan.model == "closed":
        raise PlanError(f"scenario {scenario.name} sweeps arrival rates (the open model); drop --model closed "
                        "or leave the scenario out")
    duration = plan._timing(scenario)[0]
    for fault in scenario.faults:
        if fault.at_s + fault.duration_s > duration:
            raise PlanError(f"scenario {scenario.name}: its fault ({fault.action} {fault.service} at {fault.at_s:g} s "
                            f"for {fault.duration_s:g} s) needs a measured window of at least "
                            f"{fault.at_s + fault.duration_s:g} s, got --duration {duration:g}")
    if plan.model == "open" and scenario.sweep is None and not plan.rate:
        closed = [p for p in plan.phases(scenario.name) if not p.rate]
        if closed:
            raise PlanError(f"the open model needs an arrival rate: scenario {scenario.name} has none; "
                            "give --rate R (arrivals per second)")

