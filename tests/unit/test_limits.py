"""Declared limits on a store (harness/limits.py): a real cgroup v1 cpu group on this machine (root), and
a scenario that cannot get its limit is not run, with the reason, never run unlimited or passed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import limits
from harness.claims import check
from harness.modules import get_module
from harness.plan import make_plan

SPIN = ("import os, time\nif os.fork() == 0:\n    time.sleep(30)\n    os._exit(0)\n"
        "end = time.monotonic() + 60\nwhile time.monotonic() < end: pass")  # both bounded


def members(group: Path) -> set[int]:
    return {int(p) for p in (group / "cgroup.procs").read_text().split()}


@pytest.mark.skipif(limits.unavailable() is not None, reason="needs root and cgroup v1 (CI's machine has both)")
def test_a_process_tree_is_limited_for_the_block_and_moved_back():
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.3)
        with limits.cpu_limited("pytest-spinner", [spinner.pid], 0.1) as group:
            assert limits.quota(group) == pytest.approx(0.1)
            assert spinner.pid in members(group)
            child = subprocess.run(["pgrep", "-P", str(spinner.pid)], capture_output=True, text=True).stdout.split()
            assert child  # forked before the limit: not moved (only the listed pids are)
        assert not group.exists()
        root = {int(p) for p in (limits.CPU / "cgroup.procs").read_text().split()}
        assert spinner.pid in root
    finally:
        spinner.kill()
        spinner.wait()


def test_no_cgroup_controller_is_a_reason(tmp_path):
    assert "no cgroup v1 cpu controller" in limits.unavailable(tmp_path)
    with pytest.raises(PermissionError):
        with limits.cpu_limited("x", [1], 0.1, root=tmp_path):
            pass


def test_a_scenario_whose_limit_cannot_be_set_is_not_run_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(limits, "CPU", tmp_path)  # a host without cgroup v1's cpu controller
    monkeypatch.setattr(limits.unavailable, "__defaults__", (tmp_path,))
    spec = get_module("scaling_writes")
    plan = make_plan(spec, scenarios=["saturation", "store_bound"])
    assert plan.scenarios == ["saturation"] and "no cgroup v1 cpu controller" in plan.not_run["store_bound"]
    claim = next(c for c in spec.claims if c.scenario == "store_bound")
    verdict = check(claim, {"saturation": {}}, not_run=plan.not_run)
    assert verdict.status == "not run" and "no cgroup v1 cpu controller" in verdict.detail
    with pytest.raises(Exception, match="no phase to run: store_bound"):
        make_plan(spec, scenarios=["store_bound"])
