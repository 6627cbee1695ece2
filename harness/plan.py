"""What a run will do: module, variants, scenarios, load model and profile, expanded into phases.

Phases are variant x repetition, interleaved (A B C A B C) so that drift hits every variant alike.
A scenario runs in the closed model (Locust users, no think time) unless it, or the run, names an
arrival rate; several rates make a sweep, from which the report draws latency-vs-throughput curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.modules import Module
from harness.shapes import PROFILES


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
    group: str = ""  # the summary this phase belongs to: the scenario, or scenario@rate in a sweep

    @property
    def slug(self) -> str:
        return f"{self.index:02d}_{self.group or self.scenario}_{self.variant}".replace("@", "_at_")


@dataclass
class Plan:
    module: Module
    variants: list[str]
    scenarios: list[str]
    profile: str = "steady"
    users: int = 32
    duration_s: float = 20.0
    warmup_s: float = 5.0
    repeat: int = 2
    model: str | None = None  # closed | open | None: as each scenario says
    rates: list[float] = field(default_factory=list)
    arrivals: str = "fixed"
    knee_p99_ms: float = 100.0
    processes: int = 1  # Locust worker processes on this machine (its own distributed mode)
    variants_chosen: bool = True  # False: a scenario none of whose variants is a default runs all of its own
    locust_args: list[str] = field(default_factory=list)

    def loads_for(self, config: dict) -> list[dict]:
        """The load settings a scenario runs under: one per rate (0 is the closed model), each of
        which may set its own user count (`loads` in the scenario's data)."""
        if self.model == "closed":
            return [{"rate": 0.0}]
        if self.rates:
            return [{"rate": rate} for rate in self.rates]
        if "loads" in config:
            return config["loads"]
        return [{"rate": rate} for rate in config.get("rates") or [config.get("rate", 0.0)]]

    def phases(self) -> list[PhaseSpec]:
        specs = []
        for scenario in self.scenarios:
            config = self.module.workload().SCENARIOS[scenario]
            variants = [v for v in self.variants if v in config["variants"]]
            if not variants and not self.variants_chosen:
                variants = list(config["variants"])
            loads = self.loads_for(config)
            for repetition in range(1, self.repeat + 1):
                for load in loads:
                    rate = load["rate"]
                    group = (f"{scenario}@{rate:g}" if rate else f"{scenario}@closed") if len(loads) > 1 else scenario
                    for variant in variants:
                        specs.append(PhaseSpec(len(specs) + 1, scenario, variant, repetition,
                                               load.get("users", config.get("users", self.users)),
                                               config.get("duration_s", self.duration_s),
                                               config.get("warmup_s", self.warmup_s), rate, group))
        return specs

    def parameters(self) -> dict:
        phases = self.phases()
        return {"variants": list(dict.fromkeys(p.variant for p in phases)), "scenarios": self.scenarios,
                "profile": self.profile,
                "model": "open" if all(p.rate for p in phases) else "closed" if not any(p.rate for p in phases)
                else "mixed",
                "rates": sorted({p.rate for p in phases if p.rate}), "arrivals": self.arrivals,
                "knee_p99_ms": self.knee_p99_ms, "processes": self.processes, "users": self.users,
                "duration_s": self.duration_s,
                "warmup_s": self.warmup_s, "repeat": self.repeat, "host": self.module.url,
                "latency_of": getattr(self.module.workload(), "LATENCY_OF", None) or "Aggregated",
                "locust_args": self.locust_args}


def make_plan(module: Module, variants: list[str] | None = None, scenarios: list[str] | None = None,
              **options) -> Plan:
    """Check every choice against the module's data, with messages that list the valid ones."""
    workload = module.workload()
    known_variants, known_scenarios = list(workload.VARIANTS), list(workload.SCENARIOS)
    for name, given, known in (("variant", variants, known_variants), ("scenario", scenarios, known_scenarios)):
        unknown = [g for g in given or [] if g not in known]
        if unknown:
            raise PlanError(f"unknown {name} {', '.join(unknown)} for {module.id}; known: {', '.join(known)}")
    if options.get("profile", "steady") not in PROFILES:
        raise PlanError(f"unknown profile {options['profile']!r}; known: {', '.join(PROFILES)}")
    for name, low in (("users", 1), ("duration_s", 1), ("repeat", 1), ("warmup_s", 0), ("knee_p99_ms", 0.001),
                      ("processes", 1)):
        if name in options and options[name] < low:
            raise PlanError(f"{name.removesuffix('_s')} must be at least {low}, got {options[name]}")
    if any(rate <= 0 for rate in options.get("rates") or []):
        raise PlanError(f"every --rate must be > 0 arrivals/s, got {options['rates']}")
    if options.get("model") not in (None, "open", "closed"):
        raise PlanError(f"model must be open or closed, got {options['model']!r}")
    if options.get("model") == "closed" and options.get("rates"):
        raise PlanError("--rate sets arrivals per second, which is the open model; drop --model closed")
    if options.get("arrivals", "fixed") not in ("fixed", "poisson"):
        raise PlanError(f"arrivals must be fixed or poisson, got {options['arrivals']!r}")
    default_variants = getattr(workload, "DEFAULT_VARIANTS", known_variants)
    default_scenarios = getattr(workload, "DEFAULT_SCENARIOS", known_scenarios)
    plan = Plan(module, list(variants or default_variants), list(scenarios or default_scenarios),
                variants_chosen=bool(variants), **options)
    phases = plan.phases()
    if not phases:
        raise PlanError(f"no phase to run: scenarios {plan.scenarios} have none of the variants {plan.variants}")
    if plan.model == "open" and not all(p.rate for p in phases):
        raise PlanError("the open model needs an arrival rate: give --rate R (arrivals per second)")
    return plan
