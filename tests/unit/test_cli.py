"""The CLI's answers to bad input, and the module data it lists; no services needed."""

import subprocess
import sys

import pytest

from harness.cli import main
from harness.modules import get_module
from harness.plan import PlanError, make_plan


def harness(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_unknown_module_and_variant_are_clear_errors(capsys):
    assert main(["run", "scaling_writes"]) == 2
    assert "unknown module 'scaling_writes'; known modules: scaling_reads" in capsys.readouterr().out
    assert main(["run", "scaling_reads", "--variants", "direct", "memcached"]) == 2
    out = capsys.readouterr().out
    assert "unknown variant memcached" in out and "cache_aside" in out


def test_plan_validation():
    module = get_module("scaling_reads")
    with pytest.raises(PlanError, match="users must be at least 1"):
        make_plan(module, users=0)
    with pytest.raises(PlanError, match="unknown scenario"):
        make_plan(module, scenarios=["soak"])
    with pytest.raises(PlanError, match="no phase to run"):
        make_plan(module, variants=["direct"], scenarios=["stampede"])
    plan = make_plan(module, variants=["direct", "cache_aside"], repeat=2)
    ycsb = [(p.variant, p.repetition) for p in plan.phases() if p.scenario == "ycsb"]
    assert ycsb == [("direct", 1), ("cache_aside", 1), ("direct", 2), ("cache_aside", 2)]  # interleaved
    assert [p.index for p in plan.phases()] == list(range(1, len(plan.phases()) + 1))


def test_bad_env_setting_names_the_variable():
    done = harness("status", env={"HARNESS_PG_PORT": "not-a-port"})
    assert done.returncode == 2
    assert "HARNESS_PG_PORT" in done.stdout
    done = harness("status", env={"HARNESS_BIND": "0.0.0.0"})
    assert done.returncode == 2 and "loopback" in done.stdout


def test_unknown_run_reference(tmp_path):
    done = harness("report", "nope", env={"HARNESS_RESULTS_DIR": str(tmp_path)})
    assert done.returncode == 2 and "no run 'nope'" in done.stdout


def test_list_shows_variants_scenarios_and_claims(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    claims = get_module("scaling_reads").workload().CLAIMS
    for text in ("cache_aside_singleflight", "scenario stampede", *(c.expression for c in claims)):
        assert text in out


def test_open_model_plans():
    module = get_module("scaling_reads")
    stall = make_plan(module, scenarios=["stall"], repeat=1).phases()
    assert [(p.group, p.rate, p.users) for p in stall] == [("stall@closed", 0, 8), ("stall@200", 200, 600)]
    assert [p.slug for p in stall] == ["01_stall_at_closed_noop", "02_stall_at_200_noop"]
    sweep = make_plan(module, variants=["direct", "noop"], scenarios=["ycsb"], rates=[100, 200], repeat=1)
    assert [(p.group, p.variant) for p in sweep.phases()] == [
        ("ycsb@100", "direct"), ("ycsb@100", "noop"), ("ycsb@200", "direct"), ("ycsb@200", "noop")]
    assert sweep.parameters()["model"] == "open"
    fixed = make_plan(module, scenarios=["fixed_rate"], repeat=1)
    assert {p.rate for p in fixed.phases()} == {250} and fixed.phases()[0].group == "fixed_rate"
    assert {p.rate for p in make_plan(module, scenarios=["sweep"], model="closed").phases()} == {0}
    with pytest.raises(PlanError, match="open model needs an arrival rate"):
        make_plan(module, scenarios=["ycsb"], model="open")
    with pytest.raises(PlanError, match="drop --model closed"):
        make_plan(module, model="closed", rates=[10])
    with pytest.raises(PlanError, match="must be > 0"):
        make_plan(module, rates=[0])
