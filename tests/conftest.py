"""Shared fixtures: the real embedded stack, started once per session by harness.stack itself, with
the services of every registered module.

Services already answering on the configured ports (a developer's `harness up`, or compose) are used
as they are and left running; whatever this session started is stopped at its end, and the fixture
checks that no process of it is left behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/grafana.py, tests/unit/sample_run.py


@pytest.fixture(scope="session")
def stack():
    from harness.modules import modules
    from harness.pids import group_gone
    from harness.settings import get_settings
    from harness.stack import Stack, services_for

    settings = get_settings()
    names = list(dict.fromkeys(name for spec in modules().values() for name in services_for(spec)))
    stack = Stack(settings)
    started = stack.up(names)
    yield stack
    # Read the state file again: faults in the tests restart services under new pids.
    state = Stack(settings).state
    pids = [state[name]["pid"] for name in started if name in state]
    stack.down(started)
    leftovers = [pid for pid in pids if not group_gone(pid)]  # a zombie only waits for init to reap it
    assert not leftovers, f"processes left behind after down: {leftovers}"


@pytest.fixture(scope="session")
def target_urls(stack) -> dict[str, str]:
    """{module id: its target's URL} for every registered module."""
    from harness.modules import modules, url

    return {module_id: url(spec) for module_id, spec in modules().items()}


@pytest.fixture(scope="session")
def target_url(target_urls) -> str:
    """Scaling Reads' target, for the tests written before there were several modules."""
    return target_urls["scaling_reads"]
