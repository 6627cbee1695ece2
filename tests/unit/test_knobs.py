"""Knobs as scenario data: validated against the module's services when the spec loads, resolved with
`--knob` overrides on the load side, and carried by every phase of the plan (run.json)."""

import pytest
from pydantic import ValidationError

from harness.loadgen import knobs
from harness.modules.contention import SPEC as CONTENTION
from harness.modules.realtime import PUBLISHER
from harness.modules.realtime import SPEC as REALTIME
from harness.plan import make_plan
from harness.spec import Knob, Scenario


def with_scenario(spec, scenario):
    return type(spec).model_validate({**dict(spec), "scenarios": (*spec.scenarios, scenario)})


def test_a_knob_names_the_target_or_a_process_with_a_port():
    ok = Scenario(name="tuned", knobs=(Knob(service="realtime", name="a", value=1),
                                       Knob(service=PUBLISHER, name="publish_rate", value=2.5)))
    assert with_scenario(REALTIME, ok).scenario("tuned").knobs == ok.knobs
    for service in ("redis", "memcached"):  # a store serves no knobs; an unknown service is not one
        bad = Scenario(name="tuned", knobs=(Knob(service=service, name="a", value=1),))
        with pytest.raises(ValidationError, match=rf"scenarios\.tuned\.knobs\.service: unknown '{service}' "
                                                  rf"\(known: realtime, {PUBLISHER}\)"):
            with_scenario(REALTIME, bad)


def test_a_knob_is_set_once_per_scenario_and_its_fields_are_checked():
    with pytest.raises(ValidationError, match=r"knobs: each one is set once, got \['contention.x', 'contention.x'\]"):
        Scenario(name="twice", knobs=(Knob(service="contention", name="x", value=1),
                                      Knob(service="contention", name="x", value=2)))
    with pytest.raises(ValidationError, match=r"name\n  String should match pattern"):
        Knob(service="contention", name="Bad Name", value=1)
    with pytest.raises(ValidationError, match=r"value"):
        Knob(service="contention", name="x", value=[1, 2])
    assert Knob(service="contention", name="x", value=1).value == 1 and Knob(
        service="contention", name="x", value=True).value is True


def test_the_paused_holder_pause_is_derived_from_the_lease_not_a_literal():
    """The scenario sets how far past the lease a holder sleeps; the target adds the lease it runs with."""
    scenario = CONTENTION.scenario("paused_holder")
    values = {k.name: k.value for k in scenario.knobs}
    assert values.keys() == {"pause_every", "pause_past_lease_ms"} and values["pause_past_lease_ms"] > 0
    assert {k.service for k in scenario.knobs} == {"contention"}


def test_overrides_parse_and_win_over_the_scenario():
    resolved = knobs.resolve(REALTIME, "fanout", [f"{PUBLISHER}.publish_rate=20", f"{PUBLISHER}.channels=4"])
    assert {(k.name, k.value) for k in resolved} == {("publish_rate", 20), ("channels", 4)}
    assert knobs.value(resolved, PUBLISHER, "channels", 1) == 4
    assert knobs.value(resolved, PUBLISHER, "payload_bytes", 100) == 100
    assert knobs.parse("contention.mode=fast").value == "fast"
    assert knobs.parse("contention.on=true").value is True


@pytest.mark.parametrize("text,message", [
    ("publish_rate=3", "--knob takes SERVICE.NAME=VALUE"),
    (f"{PUBLISHER}.publish_rate", "--knob takes SERVICE.NAME=VALUE"),
    (f"{PUBLISHER}.publish_rate=[1]", "must be a number, true/false or a string"),
    ("redis.maxmemory=1", "'redis' serves no knobs; known: realtime, realtime_publisher"),
])
def test_bad_overrides_say_what_was_expected(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        knobs.resolve(REALTIME, "steady", [text])


def test_every_phase_carries_its_scenario_knobs():
    plan = make_plan(CONTENTION, scenarios=["high", "paused_holder"], repeat=1)
    by_scenario = {p.scenario: p.knobs for name in plan.scenarios for p in plan.phases(name)}
    assert by_scenario["high"] == ()
    assert by_scenario["paused_holder"] == tuple(k.model_dump() for k in CONTENTION.scenario("paused_holder").knobs)
