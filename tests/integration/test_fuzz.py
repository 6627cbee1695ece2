"""Property-based fuzzing of every registered target through its own OpenAPI description (schemathesis):
valid and invalid requests for every operation; no response may be a 5xx and the target's log may
not show an unhandled exception. The number of requests per target is printed (pytest -s shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from harness.modules import modules

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25  # per generation mode: about 1,000 requests per target, under 30 s
UNHANDLED = ("Traceback (most recent call last)", "Exception in ASGI application")


def fuzz_operation(operation, base_url: str, mode: GenerationMode, session: requests.Session) -> list[str]:
    """Send generated requests for one operation; returns one line per request sent, 5xx ones marked."""
    sent: list[str] = []

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=15)
        mark = "5xx " if response.status_code >= 500 else ""
        sent.append(f"{mark}{response.status_code} {case.method} {case.formatted_path} {case.body!r:.200}")

    try:
        send()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        assert mode is GenerationMode.NEGATIVE
    return sent


def log_size(stack, module_id: str) -> tuple[Path | None, int]:
    entry = stack.state.get(module_id)
    if not entry or not stack.owns(module_id):
        return None, 0  # a target the harness did not start (compose): its log is not ours to read
    path = Path(entry["log"])
    return path, path.stat().st_size if path.exists() else 0


@pytest.mark.parametrize("module_id", sorted(modules()))
def test_fuzz_target_through_its_openapi(stack, target_urls, module_id):
    base_url = target_urls[module_id]
    log, offset = log_size(stack, module_id)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the target publishes no operation"
    sent = []
    with requests.Session() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                sent += fuzz_operation(operation, base_url, mode, session)
    errors = [line for line in sent if line.startswith("5xx")]
    print(f"\n{module_id}: {len(sent)} generated requests over {len(operations)} operations, {len(errors)} 5xx")
    assert not errors, "\n".join(errors[:20])
    if log is not None:
        new_lines = log.read_bytes()[offset:].decode(errors="replace")
        assert not any(marker in new_lines for marker in UNHANDLED), new_lines[-3000:]
    assert requests.get(f"{base_url}/healthz", timeout=10).status_code == 200
