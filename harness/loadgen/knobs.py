"""A scenario's knobs, turned on the system under test for one test (see `Knob` in harness/spec.py).

When a test starts, the master (or the single process; never a worker) sends each service the
scenario names its knobs: `PUT /admin/knobs` with the admin token, on the target's port or the
process's own. When the test stops it sends `PUT {}`: every knob back to its default. `--knob
SERVICE.NAME=VALUE` (repeatable) adds a knob or overrides the scenario's, for a plain `locust -f`
run; the service validates names and values, and its 4xx stops the test with its message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import requests

from harness.settings import Settings
from harness.spec import Knob, ModuleSpec

log = logging.getLogger("harness")
PATH = "/admin/knobs"


def parse(text: str) -> Knob:
    """`SERVICE.NAME=VALUE` as a Knob; the value is JSON (1, 1.5, true, "x") or else a plain string."""
    target, sep, raw = text.partition("=")
    service, dot, name = target.partition(".")
    if not (sep and dot and service and name):
        raise ValueError(f"--knob takes SERVICE.NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if not isinstance(value, bool | int | float | str):
        raise ValueError(f"--knob {target}: the value must be a number, true/false or a string, got {raw!r}")
    return Knob(service=service, name=name, value=value)


def resolve(spec: ModuleSpec, scenario: str, overrides: Iterable[str] = ()) -> tuple[Knob, ...]:
    """The scenario's knobs with `--knob` overrides applied (a later one wins); raises ValueError naming
    what is wrong (a malformed --knob, a service that serves no knobs)."""
    knobs = {(k.service, k.name): k for k in spec.scenario(scenario).knobs}
    for text in overrides:
        knob = parse(text)
        if knob.service not in spec.knob_services:
            raise ValueError(f"--knob {text}: {knob.service!r} serves no knobs; known: "
                             f"{', '.join(spec.knob_services)}")
        knobs[knob.service, knob.name] = knob
    return tuple(knobs.values())


def value(knobs: Iterable[Knob], service: str, name: str, default):
    """The value a phase runs `service`'s knob `name` with: the one set, else `default`."""
    return next((k.value for k in knobs if (k.service, k.name) == (service, name)), default)


def service_url(spec: ModuleSpec, service: str, settings: Settings) -> str:
    """Where `service` serves its knobs: HARNESS_TARGET_URLS[service], else its port on target_host."""
    return settings.target_url(service, spec.knob_services[service])


def _put(url: str, body: dict, settings: Settings) -> requests.Response:
    secret = settings.admin_secret
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return requests.put(f"{url}{PATH}", json=body, headers=headers, timeout=10)


def apply(spec: ModuleSpec, knobs: Iterable[Knob], settings: Settings) -> None:
    """Set the knobs, one PUT per service; raises RuntimeError with the service's answer when one refuses."""
    for service, body in _by_service(knobs).items():
        url = service_url(spec, service, settings)
        try:
            response = _put(url, body, settings)
        except requests.RequestException as exc:
            raise RuntimeError(f"cannot set the knobs of {service} at {url}{PATH}: {exc}") from None
        if response.status_code != 200:
            hint = " (knob routes need the admin token: HARNESS_ADMIN_TOKEN)" if response.status_code in (
                401, 403, 404) else ""
            raise RuntimeError(f"{service} refused the knobs {body}: {response.status_code} "
                               f"{response.text[:300]}{hint}")
        log.info("knobs of %s: %s", service, response.json())


def reset(spec: ModuleSpec, knobs: Iterable[Knob], settings: Settings) -> None:
    """Every knob of every service the knobs name back to its default; a service that does not answer is
    logged (a restarted process starts at its defaults anyway), never raised: the results come first."""
    for service in _by_service(knobs):
        url = service_url(spec, service, settings)
        try:
            response = _put(url, {}, settings)
            if response.status_code != 200:
                log.warning("cannot reset the knobs of %s: %s %s", service, response.status_code, response.text[:300])
        except requests.RequestException as exc:
            log.warning("cannot reset the knobs of %s at %s: %s", service, url, exc)


def _by_service(knobs: Iterable[Knob]) -> dict[str, dict]:
    grouped: dict[str, dict] = {}
    for knob in knobs:
        grouped.setdefault(knob.service, {})[knob.name] = knob.value
    return grouped


def record(knobs: Iterable[Knob]) -> list[dict]:
    """The knobs as run.json records them."""
    return [knob.model_dump() for knob in knobs]
