"""The CLI's answers to bad input, and the module data it lists; no services needed."""

import json
import os
import re
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


BROKEN_SPEC = ("from harness.spec import ModuleSpec\n"
               "SPEC = ModuleSpec(id='broken_toy', title='T', port=18998, services=(),\n"
               "                  variants=({'name': 'a', 'sentence': 'a'},),\n"
               "                  scenarios=({'name': 's', 'loads': ({'name': 'open', 'rate': -1},)},))\n")


def harness_with_broken_spec(tmp_path, *args):
    """The real CLI in its own process, with a broken spec file beside the real ones (the registry's
    package path extended before anything imports a spec)."""
    package = tmp_path / "specs"
    package.mkdir(exist_ok=True)
    (package / "broken_toy.py").write_text(BROKEN_SPEC)
    code = ("import sys, harness.modules as m; m.__path__.append(sys.argv[1]); from harness.cli import main; "
            "sys.exit(main(sys.argv[2:]))")
    return subprocess.run([sys.executable, "-c", code, str(package), *args], capture_output=True, text=True,
                          env={**os.environ, "HARNESS_STATE_DIR": str(tmp_path / "state")}, timeout=120)


def test_a_broken_spec_breaks_only_the_commands_that_need_it(tmp_path):
    from harness import pids

    # a process the stack started for the broken module's target, as the state file records it
    (tmp_path / "state").mkdir()
    pid, ticks = pids.launch(["sleep", "60"], tmp_path / "state" / "broken_toy.log", dict(os.environ), tmp_path)
    (tmp_path / "state" / "state.json").write_text(json.dumps({"broken_toy": {
        "pid": pid, "ticks": ticks, "command": ["sleep", "60"], "port": 18998, "log": "x", "data_dir": "x"}}))
    try:
        status = harness_with_broken_spec(tmp_path, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "scaling_reads" in status.stdout and re.search(rf"broken_toy\s.*18998.*harness.*{pid}", status.stdout)

        run = harness_with_broken_spec(tmp_path, "run", "broken_toy")
        assert run.returncode == 2
        assert "module spec broken_toy: scenarios.0.loads.0.rate" in run.stdout

        listed = harness_with_broken_spec(tmp_path, "list")
        assert listed.returncode == 2
        assert "scaling_reads" in listed.stdout and "realtime" in listed.stdout
        assert "error: module spec broken_toy: scenarios.0.loads.0.rate" in listed.stdout

        down = harness_with_broken_spec(tmp_path, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"stopped pid {pid}" in down.stdout and not pids.alive(pid, ticks)
    finally:
        if pids.alive(pid, ticks):
            os.kill(pid, 9)
