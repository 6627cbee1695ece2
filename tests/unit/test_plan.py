"""Plans from the module spec, and the adaptive sweep's stepping and knees, as pure functions."""

import pytest

from harness import censored, sweep
from harness.claims import Claim
from harness.modules import get_module
from harness.plan import PlanError, make_plan
from harness.record import Phase
from harness.spec import Fault, Load, ModuleSpec, Scenario, Sweep, Variant

SWEEP = Sweep(start_rate=100, factor=2, max_steps=4, p99_bound_ms=100, users=50, time_cap_s=60)


def spec() -> ModuleSpec:
    """A small module of its own: the core must plan any module, not one it knows."""
    return ModuleSpec(
        id="toy", title="Toy", port=18999, services=("postgres",),
        variants=(Variant(name="naive", sentence="n"), Variant(name="pattern", sentence="p"),
                  Variant(name="floor", sentence="f")),
        default_variants=("naive", "pattern"),
        scenarios=(Scenario(name="steady"),
                   Scenario(name="burst", variants=("pattern",), users=4, duration_s=10, warmup_s=1,
                            error_budget=0.05, options=("--burst", "1")),
                   Scenario(name="stall", variants=("floor",), duration_s=12, warmup_s=2,
                            loads=(Load(name="closed", users=8), Load(name="open", rate=200, users=600)),
                            faults=(Fault(service="toy", action="stop", at_s=5, duration_s=2),)),
                   Scenario(name="knee", sweep=SWEEP, duration_s=8, warmup_s=2)),
        default_scenarios=("steady", "burst"),
        claims=(Claim("faster", "s", "rps", "pattern", ">=", 2, baseline="naive", scenario="steady"),))


def test_default_plan_interleaves_variants_and_reads_the_scenarios():
    plan = make_plan(spec(), repeat=2)
    steady = [(p.variant, p.repetition, p.users, p.duration_s, p.warmup_s) for p in plan.phases("steady")]
    assert steady == [("naive", 1, 32, 20, 5), ("pattern", 1, 32, 20, 5), ("naive", 2, 32, 20, 5),
                      ("pattern", 2, 32, 20, 5)]
    burst = plan.phases("burst", first_index=5)
    assert [(p.index, p.variant, p.users, p.duration_s, p.error_budget) for p in burst] == [
        (5, "pattern", 4, 10, 0.05), (6, "pattern", 4, 10, 0.05)]
    assert burst[0].group == "burst" and burst[0].slug == "05_burst_pattern"


def test_a_variant_with_its_own_error_budget_plans_its_phases_with_it():
    own = Scenario(name="steady", error_budget=0.01, error_budgets={"pattern": 0.3})
    plan = make_plan(spec().model_copy(update={"scenarios": (own,)}), scenarios=["steady"], repeat=1)
    assert [(p.variant, p.error_budget) for p in plan.phases("steady")] == [("naive", 0.01), ("pattern", 0.3)]
    assert own.budget("pattern") == 0.3 and own.budget("naive") == own.budget("floor") == 0.01


def test_command_line_options_override_the_scenario():
    plan = make_plan(spec(), scenarios=["burst"], users=2, duration_s=3, warmup_s=0, repeat=1)
    (phase,) = plan.phases("burst")
    assert (phase.users, phase.duration_s, phase.warmup_s) == (2, 3, 0)


def test_multi_load_scenarios_have_stable_group_names():
    plan = make_plan(spec(), scenarios=["stall"], repeat=1)
    phases = plan.phases("stall")
    assert [(p.group, p.load, p.rate, p.users) for p in phases] == [
        ("stall.closed", "closed", 0, 8), ("stall.open", "open", 200, 600)]
    assert [p.slug for p in phases] == ["01_stall_closed_floor", "02_stall_open_floor"]
    assert {p.rate for p in make_plan(spec(), scenarios=["stall"], model="closed").phases("stall")} == {0}
    assert {p.rate for p in make_plan(spec(), scenarios=["stall"], rate=50).phases("stall")} == {50}


def test_a_scenario_runs_the_variants_it_names_unless_variants_were_chosen():
    plan = make_plan(spec(), scenarios=["stall", "steady"])
    assert plan.scenario_variants("stall") == ["floor"]  # not a default variant, but the scenario's own
    assert plan.scenario_variants("steady") == ["naive", "pattern"]  # every variant: the defaults
    assert plan.parameters()["variants"] == ["floor", "naive", "pattern"]
    assert make_plan(spec(), variants=["floor", "naive"]).scenario_variants("steady") == ["floor", "naive"]
    with pytest.raises(PlanError, match="no phase to run"):
        make_plan(spec(), variants=["naive"], scenarios=["stall"])


def test_sweeps_are_planned_as_sweeps_with_overrides():
    plan = make_plan(spec(), scenarios=["knee"], rate=40, knee_p99_ms=20, sweep_cap_s=30, repeat=1)
    assert plan.phases("knee") == []
    assert plan.sweep("knee") == SWEEP.model_copy(update={"start_rate": 40, "p99_bound_ms": 20, "time_cap_s": 30})
    phase = plan.sweep_phase("knee", "naive", 1, step=2, rate=160, index=7)
    assert (phase.group, phase.step, phase.rate, phase.users, phase.slug) == ("knee", 2, 160, 50,
                                                                              "07_knee_r160_naive")
    assert plan.parameters()["sweeps"]["knee"]["start_rate"] == 40


def test_plan_errors_name_what_was_expected():
    with pytest.raises(PlanError, match="users must be at least 1"):
        make_plan(spec(), users=0)
    with pytest.raises(PlanError, match="unknown scenario soak for toy; known: steady, burst, stall, knee"):
        make_plan(spec(), scenarios=["soak"])
    with pytest.raises(PlanError, match="unknown variant memcached"):
        make_plan(spec(), variants=["memcached"])
    with pytest.raises(PlanError, match="sweeps arrival rates"):
        make_plan(spec(), scenarios=["knee"], model="closed")
    with pytest.raises(PlanError, match="open model needs an arrival rate"):
        make_plan(spec(), scenarios=["steady"], model="open")
    with pytest.raises(PlanError, match=r"needs a measured window of at least 7 s, got --duration 3"):
        make_plan(spec(), scenarios=["stall"], duration_s=3)
    with pytest.raises(PlanError, match="drop --model closed"):
        make_plan(spec(), model="closed", rate=10)


def test_the_registered_module_plans():
    module = get_module("scaling_reads")
    plan = make_plan(module, repeat=1)
    assert plan.scenarios == list(module.default_scenarios)
    assert all(p.variant in module.default_variants for name in plan.scenarios for p in plan.phases(name))


# ---- the sweep, stepping and knees -----------------------------------------------------------

def point(rate, p99=10.0, achieved=None, dropped=0, failure_ratio=0.0):
    return {"rate": rate, "p99_ms": p99, "achieved": rate if achieved is None else achieved, "dropped": dropped,
            "failure_ratio": failure_ratio}


def test_rates_rise_by_the_factor():
    assert [sweep.rate_at(Sweep(start_rate=150, factor=1.5), i) for i in range(5)] == [150, 225, 338, 506, 759]


def test_each_step_runs_the_variants_still_holding():
    variants = ["a", "b", "c"]
    assert sweep.next_step(SWEEP, variants, {}, 0, 0.01) == sweep.Step(0, 100, ("a", "b", "c"))
    tried = {"a": [point(100)], "b": [point(100, p99=150)], "c": [point(100)]}
    assert sweep.next_step(SWEEP, variants, tried, 10, 0.01) == sweep.Step(1, 200, ("a", "c"))
    tried = {"a": [point(100), point(200, dropped=3)], "b": tried["b"], "c": [point(100), point(200)]}
    assert sweep.next_step(SWEEP, variants, tried, 20, 0.01) == sweep.Step(2, 400, ("c",))
    tried["c"].append(point(400, achieved=370))  # under 95% of the target
    assert sweep.next_step(SWEEP, variants, tried, 30, 0.01) is None


def test_a_sweep_stops_at_max_steps_or_its_time_cap():
    held = {"a": [point(100 * 2 ** i) for i in range(4)]}
    assert sweep.next_step(SWEEP, ["a"], held, 0, 0.01) is None  # max_steps = 4
    assert sweep.next_step(SWEEP, ["a"], {"a": held["a"][:2]}, 60, 0.01) is None  # time cap spent
    assert sweep.next_step(SWEEP, ["a"], {"a": held["a"][:2]}, 59, 0.01).rate == 400


def test_failures_over_budget_break_a_rate():
    assert sweep.holds(point(100, failure_ratio=0.005), 100, 0.01)
    assert not sweep.holds(point(100, failure_ratio=0.02), 100, 0.01)
    assert not sweep.holds(point(100, p99=None), 100, 0.01)  # nothing succeeded


def test_knees_are_censored_at_either_end():
    assert sweep.knee([point(100), point(200), point(400, p99=500)], 100, 0.01) == 200
    assert sweep.knee([point(100, p99=500)], 100, 0.01) == censored.lt(100)
    assert sweep.knee([point(100), point(200)], 100, 0.01) == censored.ge(200)
    assert sweep.knee([], 100, 0.01) is None


def sweep_phase(index, variant, rate, step, rep=1, p99=10.0, achieved=None) -> Phase:
    return Phase(index=index, scenario="knee", group="knee", variant=variant, rate=rate, step=step, repetition=rep,
                 rps=rate if achieved is None else achieved, latency_ms={"p99": p99}, dropped=0, failure_ratio=0.0,
                 error_budget=0.01, requests=100, failures=0)


def test_curves_take_the_median_knee_over_passes():
    phases = [sweep_phase(1, "a", 100, 0), sweep_phase(2, "b", 100, 0, p99=900),
              sweep_phase(3, "a", 200, 1, p99=300),
              sweep_phase(4, "a", 100, 0, rep=2), sweep_phase(5, "b", 100, 0, rep=2),
              sweep_phase(6, "a", 200, 1, rep=2), sweep_phase(7, "b", 200, 1, rep=2, achieved=120)]
    curves = sweep.curves(phases, {"knee": 100})
    a, b = curves["knee"]["variants"]["a"], curves["knee"]["variants"]["b"]
    assert a["passes"] == [100, censored.ge(200)] and a["knee_rate"] == censored.ge(150)
    assert b["passes"] == [censored.lt(100), 100] and b["knee_rate"] == {"low": 50, "high": 100,
                                                                           "censor": "between"}
    assert a["points"][1] == {"rate": 200, "achieved": 200, "p99_ms": 155.0, "failure_ratio": 0.0, "dropped": 0,
                              "held": 1, "runs": 2}
