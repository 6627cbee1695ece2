"""Shared fixtures: the real embedded stack, started once per session by harness.stack itself.

Services already answering on the configured ports (a developer's `harness up`, or compose) are used
as they are and left running; whatever this session started is stopped at its end, and the test
checks that no process of it is left behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/grafana.py, tests/unit/sample_run.py


@pytest.fixture(scope="session")
def stack():
    from harness.modules import get_module
    from harness.settings import get_settings
    from harness.stack import Stack, services_for

    settings = get_settings()
    stack = Stack(settings)
    started = stack.up(services_for(get_module("scaling_reads")))
    yield stack
    pids = [stack.state[name]["pid"] for name in started if name in stack.state]
    stack.down(started)
    leftovers = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not leftovers, f"processes left behind after down: {leftovers}"


@pytest.fixture(scope="session")
def target_url(stack) -> str:
    from harness.modules import get_module

    return get_module("scaling_reads").url
