"""Long-running Tasks' invariant checks on explicit inputs: each one fails on its broken case, and a lost
job and a doubled effect do not cancel out as they would in a count."""

import importlib.util
import sys

from harness.modules import get_module, locustfile


def checks():
    name = "long_running_checks"
    if name not in sys.modules:
        path = locustfile(get_module("long_running")).parent / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def results(jobs, accepted, poisoned=frozenset()):
    return {r.name: r.value for r in checks().check_jobs(jobs, set(accepted), set(poisoned))}


GOOD = {"a": ("completed", 1, 1), "b": ("completed", 1, 1), "p": ("dead", 0, 0)}


def test_a_healthy_phase_passes_every_check():
    assert set(results(GOOD, GOOD, {"p"}).values()) == {0}


def test_a_lost_job_and_a_doubled_effect_are_both_caught():
    broken = {**GOOD, "a": ("running", 1, 1), "b": ("completed", 2, 3)}
    found = results(broken, GOOD, {"p"})
    assert found["lost_jobs"] == 1 and found["effects_not_once"] == 1 and found["unkeyed_doubles"] == 1
    assert results({**GOOD, "a": ("completed", 0, 0)}, GOOD, {"p"})["effects_not_once"] == 1  # missing effect
    assert results({k: v for k, v in GOOD.items() if k != "a"}, GOOD, {"p"})["lost_jobs"] == 1  # absent row


def test_phantom_and_dead_letter_mismatch():
    assert results({**GOOD, "z": ("completed", 1, 1)}, GOOD, {"p"})["phantom_jobs"] == 1
    assert results(GOOD, GOOD, set())["dead_letters_mismatch"] == 1  # dead but never poisoned
    assert results({**GOOD, "p": ("completed", 1, 1)}, GOOD, {"p"})["dead_letters_mismatch"] == 1
    assert results({**GOOD, "p": ("dead", 1, 1)}, GOOD, {"p"})["effects_not_once"] == 1  # a dead job's effect


def test_nothing_accepted_is_nothing_checked_and_fails():
    assert set(results(GOOD, set()).values()) == {1}
