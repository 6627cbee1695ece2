"""The CLI's answers to bad input, and the module data it lists; no services needed."""

import os
import subprocess
import sys

from harness.cli import main
from harness.modules import get_module


def harness(*args, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_unknown_module_and_variant_are_clear_errors(capsys):
    assert main(["run", "no_such_module"]) == 2
    out = capsys.readouterr().out
    assert "unknown module 'no_such_module'; known modules: " in out and "scaling_reads" in out
    assert main(["run", "scaling_reads", "--variants", "direct", "memcached"]) == 2
    out = capsys.readouterr().out
    assert "unknown variant memcached" in out and "cache_aside" in out


def test_plan_errors_are_bad_input(capsys):
    assert main(["run", "scaling_reads", "--scenarios", "redis_outage", "--duration", "3"]) == 2
    assert "needs a measured window of at least 11 s" in capsys.readouterr().out
    assert main(["run", "scaling_reads", "--scenarios", "sweep", "--model", "closed"]) == 2
    assert "sweeps arrival rates" in capsys.readouterr().out


def test_bad_env_setting_names_the_variable():
    done = harness("status", env={"HARNESS_PG_PORT": "not-a-port"})
    assert done.returncode == 2
    assert "HARNESS_PG_PORT" in done.stdout
    done = harness("status", env={"HARNESS_BIND": "0.0.0.0"})
    assert done.returncode == 2 and "loopback" in done.stdout


def test_unknown_run_reference(tmp_path):
    done = harness("report", "nope", env={"HARNESS_RESULTS_DIR": str(tmp_path)})
    assert done.returncode == 2 and "no run 'nope'" in done.stdout


def test_list_prints_the_spec(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    spec = get_module("scaling_reads")
    for variant in spec.variants:
        assert f"variant  {variant.name}" in out
    for scenario in spec.scenarios:
        assert f"scenario {scenario.name}" in out
    for claim in spec.claims:
        assert claim.expression in out and f"[{claim.scenario}]" in out
    assert "fault kill redis at 6 s for 5 s" in out and "sweep from 150/s x1.5" in out
