"""The module contract, checked: every registered spec is coherent, and a broken one is refused with an
error that names the field (each kind of break shown failing here, on copies of a real spec)."""

import sys

import pytest
from pydantic import ValidationError

import harness.modules
from harness.claims import Claim
from harness.modules import BadSpec, load_spec, modules
from harness.spec import GENERIC_METRICS, Fault, HotPath, Load, Scenario

SPECS = sorted(modules())


@pytest.mark.parametrize("module_id", SPECS)
def test_every_claim_names_a_variant_scenario_load_and_metric_that_exist(module_id):
    spec = modules()[module_id]
    metrics = {*GENERIC_METRICS, *(m.name for m in spec.server_metrics), *(i.name for i in spec.invariants),
               *spec.request_metric_labels}
    for claim in spec.claims:
        scenario_name, _, load = claim.scenario.partition(".")
        scenario = spec.scenario(scenario_name)
        assert not load or load in [x.name for x in scenario.loads], claim.id
        assert len(scenario.loads) <= 1 or load, f"{claim.id}: say which load of {scenario_name}"
        base_name = (claim.baseline_scenario or claim.scenario).partition(".")[0]
        assert claim.variant in spec.scenario_variants(scenario_name), claim.id
        assert set(claim.variants[1:]) <= set(spec.scenario_variants(base_name)), claim.id
        assert claim.metric in metrics, claim.id


@pytest.mark.parametrize("module_id", SPECS)
def test_every_spec_is_complete(module_id):
    spec = modules()[module_id]
    services = {*spec.services, spec.id, *(p.name for p in spec.processes)}
    assert all(f.service in services for s in spec.scenarios for f in s.faults)
    assert set(spec.default_variants) <= set(spec.variant_names)
    assert spec.latency_of
    presentation = spec.presentation()
    assert presentation["columns"] and presentation["main_scenario"] in [s.name for s in spec.scenarios]
    assert spec.claims, "a module without claims measures nothing it can be held to"


def rebuilt(spec, **changes):
    """A copy of a spec with fields replaced, validated again (model_copy alone does not validate)."""
    return type(spec).model_validate({**dict(spec), **changes})


@pytest.fixture
def spec():
    return modules()[SPECS[0]]


def claim_on(spec, **kw):
    scenario = next(s for s in spec.scenarios if not s.sweep and len(s.loads) <= 1)
    variant = spec.scenario_variants(scenario.name)[0]
    return Claim(**{"id": "broken", "sentence": "s", "metric": "rps", "variant": variant, "op": ">=",
                    "threshold": 1, "scenario": scenario.name, **kw})


def test_a_rebuilt_copy_is_valid(spec):
    assert rebuilt(spec) == spec


def test_unknown_variant_in_a_claim_is_refused(spec):
    with pytest.raises(ValidationError, match=r"claims\.broken\.variants: unknown 'memcached'"):
        rebuilt(spec, claims=(*spec.claims, claim_on(spec, variant="memcached")))
    with pytest.raises(ValidationError, match=r"claims\.broken\.variants: unknown 'nobody'"):
        rebuilt(spec, claims=(claim_on(spec, baseline="nobody", threshold=2),))


def test_unknown_metric_in_a_claim_is_refused(spec):
    with pytest.raises(ValidationError, match=r"claims\.broken\.metric: unknown 'hit_rate'"):
        rebuilt(spec, claims=(claim_on(spec, metric="hit_rate"),))


def test_unknown_scenario_or_load_in_a_claim_is_refused(spec):
    with pytest.raises(ValidationError, match=r"claims\.broken\.scenario: unknown 'soak'"):
        rebuilt(spec, claims=(claim_on(spec, scenario="soak"),))
    two_loads = Scenario(name="two", loads=(Load(name="closed"), Load(name="open", rate=10)))
    scenarios = (*spec.scenarios, two_loads)
    with pytest.raises(ValidationError, match=r"claims\.broken\.scenario load: unknown 'half'"):
        rebuilt(spec, scenarios=scenarios, claims=(claim_on(spec, scenario="two.half"),))
    with pytest.raises(ValidationError, match=r"claims\.broken\.scenario: two has several loads; say two\.<load>"):
        rebuilt(spec, scenarios=scenarios, claims=(claim_on(spec, scenario="two"),))


def test_fault_on_an_unknown_service_is_refused(spec):
    faulty = Scenario(name="outage", faults=(Fault(service="memcached", action="kill", at_s=1, duration_s=1),))
    with pytest.raises(ValidationError, match=r"scenarios\.outage\.faults\.service: unknown 'memcached'"):
        rebuilt(spec, scenarios=(*spec.scenarios, faulty))


def test_bad_field_values_name_the_field(spec):
    with pytest.raises(ValidationError, match=r"port\n  Input should be greater than or equal to 1024"):
        rebuilt(spec, port=80)
    with pytest.raises(ValidationError, match=r"error_budget\n  Input should be less than or equal to 1"):
        Scenario(name="x", error_budget=2)
    with pytest.raises(ValidationError, match=r"action\n  Input should be 'kill', 'stop' or 'restart'"):
        Fault(service="redis", action="pause", at_s=1, duration_s=1)
    with pytest.raises(ValidationError, match=r"columns: unknown 'bogus'"):
        rebuilt(spec, columns=("rps", "bogus"))
    with pytest.raises(ValidationError, match=r"default_variants: unknown 'memcached'"):
        rebuilt(spec, default_variants=("memcached",))


def test_error_budgets_per_variant_name_variants_of_the_scenario_and_stay_within_0_and_1(spec):
    scenario = next(s for s in spec.scenarios if not s.sweep)
    other = Scenario(name="own_budgets", variants=scenario.variants, error_budgets={"memcached": 0.2})
    with pytest.raises(ValidationError, match=r"scenarios\.own_budgets\.error_budgets: unknown 'memcached'"):
        rebuilt(spec, scenarios=(*spec.scenarios, other))
    with pytest.raises(ValidationError, match=r"error_budgets\.pattern\n  Input should be less than or equal to 1"):
        Scenario(name="x", error_budgets={"pattern": 1.5})
    with pytest.raises(ValidationError, match=r"a sweep has one budget"):
        Scenario(name="x", sweep={}, error_budgets={"pattern": 0.2})


def test_a_claim_comparing_two_ratios_names_a_second_metric_that_exists(spec):
    variants = spec.scenario_variants(next(s for s in spec.scenarios if not s.sweep and len(s.loads) <= 1).name)
    with pytest.raises(ValidationError, match=r"claims\.broken\.metric: unknown 'p42_ms'"):
        rebuilt(spec, claims=(claim_on(spec, baseline=variants[-1], against="p42_ms"),))


def test_the_loader_names_the_module_and_the_field(tmp_path, monkeypatch):
    """A broken spec file under the registry is refused when it loads, with module and field in the message."""
    package = tmp_path / "extra"
    package.mkdir()
    (package / "broken_toy.py").write_text(
        "from harness.spec import ModuleSpec\n"
        "SPEC = ModuleSpec(id='broken_toy', title='T', port=18998, services=(),\n"
        "                  variants=({'name': 'a', 'sentence': 'a'},),\n"
        "                  scenarios=({'name': 's', 'loads': ({'name': 'open', 'rate': -1},)},))\n")
    monkeypatch.setattr(harness.modules, "__path__", [*harness.modules.__path__, str(package)])
    monkeypatch.delitem(sys.modules, "harness.modules.broken_toy", raising=False)
    with pytest.raises(BadSpec, match=r"module spec broken_toy: scenarios\.0\.loads\.0\.rate: Input should be "
                                      r"greater than or equal to 0"):
        load_spec("broken_toy")


def test_a_hot_path_names_variants_that_exist_and_a_path_with_a_key():
    reads = harness.modules.get_module("scaling_reads")
    assert reads.hot_path is not None and {reads.hot_path.fast, reads.hot_path.floor} <= set(reads.variant_names)
    with pytest.raises(ValidationError, match=r"hot_path\.fast: unknown 'memcached'"):
        rebuilt(reads, hot_path=reads.hot_path.model_copy(update={"fast": "memcached"}))
    with pytest.raises(ValidationError, match=r"hot_path\.floor: unknown 'nothing'"):
        rebuilt(reads, hot_path=reads.hot_path.model_copy(update={"floor": "nothing"}))
    with pytest.raises(ValidationError, match=r"path\n  String should match pattern"):
        HotPath(fast="a", floor="b", path="/products/1", name="GET")
    with pytest.raises(ValidationError, match=r"max_load_ratio\n  Input should be greater than or equal to 1"):
        HotPath(fast="a", floor="b", path="/p/{key}", name="GET", max_load_ratio=0.9)
