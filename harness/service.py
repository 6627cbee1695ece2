"""One entry of the embedded stack (`Service`) and the small helpers every entry uses.

The entries themselves are in `services.py` (Redis, Prometheus, targets, module processes) and
`services_pg.py` (PostgreSQL); `stack.py` runs them.
"""

from __future__ import annotations

import glob
import ipaddress
import logging
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.settings import Settings

log = logging.getLogger("harness")


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class Service:
    """How to start, check and describe one service.

    `healthy` is None for a process with no port to ask: the stack then counts it healthy while the
    process it started is alive. `version` never raises (None when unknown or not applicable).
    """

    name: str
    port: Callable[[Settings], int | None]
    command: Callable[[Settings, Path], list[str]]
    healthy: Callable[[Settings], bool] | None
    prepare: Callable[[Settings, Path], None] = lambda settings, data_dir: None
    env: Callable[[Settings], dict[str, str]] = lambda settings: {}
    version: Callable[[Settings], str | None] = lambda settings: None
    stop_signal: int = signal.SIGTERM
    needs_unprivileged_user: bool = False
    after_start: Callable[[Settings], None] = lambda settings: None
    port_setting: str | None = None  # the variable that moves its port, named in errors
    host_field: str | None = None  # the Settings field where clients look for it (pg_host, ...)


def find_binary(name: str, *, extra_globs: tuple[str, ...] = (), hint: str) -> str:
    found = shutil.which(name)
    for pattern in extra_globs:
        if found:
            break
        found = next(iter(sorted(glob.glob(pattern), reverse=True)), None)
    if not found:
        raise StackError(f"{name} not found: {hint}")
    return found


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def never_raises(probe: Callable[[Settings], object]) -> Callable[[Settings], str | None]:
    """A version probe whose failure is recorded as unknown (None), never an error of the run."""

    def version(settings: Settings) -> str | None:
        try:
            found = probe(settings)
        except Exception as exc:  # any client error: the service is down, external or too old
            log.debug("version probe failed: %s", exc)
            return None
        return None if found is None else str(found)

    return version


def ensure_secret(path: Path) -> str:
    """The secret in `path`, generated on first use (owner-only file, never overwritten)."""
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        if path.is_symlink():
            raise StackError(f"refusing the secret file {path}: it is a symbolic link") from None
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret


def check_listen_address(service: Service, settings: Settings) -> None:
    """Refuse to start a service on HARNESS_BIND when its clients look for it on the other loopback
    (HARNESS_BIND=::1 with HARNESS_REDIS_HOST=127.0.0.1): it would never be found."""
    if service.host_field is None:
        return
    host = getattr(settings, service.host_field)
    try:
        mismatch = ipaddress.ip_address(host).version != ipaddress.ip_address(settings.bind).version
    except ValueError:
        return  # a host name: resolved by the client, nothing to compare
    if mismatch:
        variable = f"HARNESS_{service.host_field.upper()}"
        raise StackError(f"{service.name} would listen on HARNESS_BIND={settings.bind}, but its clients look for it at "
                         f"{variable}={host}; set {variable}={settings.bind} too (or leave HARNESS_BIND unset)")


def require_project_file(settings: Settings, relative: str | Path) -> Path:
    """A file of the project directory (a locustfile, a target, a dashboard), or a clear error."""
    path = settings.project_dir / relative
    if not path.exists():
        raise StackError(
            f"{path} not found: the project directory {settings.project_dir} must hold locustfiles/, targets/ "
            "and dashboards/ (a checkout, or an installed pattern-harness); set HARNESS_PROJECT_DIR to one"
        )
    return path
