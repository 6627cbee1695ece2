"""The load side's one call into orchestration: a plain `locust -f` starts what it needs.

When the target does not answer, the embedded stack starts the module's services (stores, then the
target, then the module's processes) and stops exactly those at quit. This is the only place under
`harness/loadgen` that imports `harness.stack`.
"""

from __future__ import annotations

import logging

import requests

from harness.settings import Settings
from harness.spec import ModuleSpec

log = logging.getLogger("harness")


def answers(host: str) -> bool:
    try:
        return requests.get(f"{host}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def ensure_stack(spec: ModuleSpec, host: str, settings: Settings) -> list[str]:
    """Start the module's services when `host` does not answer; returns the names it started."""
    if answers(host):
        return []
    from harness.stack import Stack, StackError, services_for

    log.info("%s does not answer; starting the embedded stack for %s", host, spec.id)
    try:
        return Stack(settings).up(services_for(spec))
    except StackError as exc:
        raise SystemExit(f"cannot start the embedded stack: {exc}") from None


def stop_stack(started: list[str], settings: Settings) -> None:
    if started:
        from harness.stack import Stack

        Stack(settings).down(started)
