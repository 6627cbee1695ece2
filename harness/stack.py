"""The embedded stack: real services started as child processes on loopback, no Docker.

`up` starts what does not answer yet and waits for health; `down` stops exactly the pids recorded in
the state file. A service that already answers on its port and is not ours (the compose stack, a
system service) is used as it is and never stopped. The services themselves are in `services.py`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.services import (
    SERVICES,
    Service,
    StackError,
    as_service_user,
    data_dir_for,
    find_binary,
    prometheus_config,
    services_for,
)
from harness.settings import Settings

__all__ = ["SERVICES", "Stack", "StackError", "find_binary", "prometheus_config", "services_for"]


@dataclass
class Stack:
    settings: Settings
    state: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    @property
    def state_file(self) -> Path:
        return self.settings.state_dir / "state.json"

    def _save(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.state_file)

    def owns(self, name: str) -> bool:
        entry = self.state.get(name)
        return bool(entry) and _alive(entry["pid"], entry["ticks"])

    def status(self, names: list[str] | None = None) -> list[dict]:
        rows = []
        for name in names or list(SERVICES):
            service = SERVICES[name]
            entry = self.state.get(name, {})
            healthy = service.healthy(self.settings)
            owner = "harness" if self.owns(name) else ("external" if healthy else "-")
            rows.append(
                {
                    "service": name,
                    "port": service.port(self.settings),
                    "healthy": healthy,
                    "owner": owner,
                    "pid": entry.get("pid") if owner == "harness" else None,
                    "log": entry.get("log"),
                }
            )
        return rows

    def up(self, names: list[str], on_event: Callable[[str, str], None] = lambda n, m: None) -> list[str]:
        """Start what does not answer yet, in order; returns the names this call started."""
        started = []
        for name in names:
            service = SERVICES[name]
            if service.healthy(self.settings):
                on_event(name, "already up")
                continue
            if self.owns(name):  # our process is alive but not answering: still starting
                self._wait_healthy(service, self.state[name])
            else:
                self._start(service)
                started.append(name)
            service.after_start(self.settings)
            on_event(name, "up")
        return started

    def _start(self, service: Service) -> None:
        data_dir = data_dir_for(service, self.settings.state_dir)
        service.prepare(self.settings, data_dir)
        command = service.command(self.settings, data_dir)
        if service.needs_unprivileged_user:
            command = as_service_user(command)
        log_path = self.settings.state_dir / f"{service.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **service.env(self.settings)},
                cwd=self.settings.project_dir,
                start_new_session=True,
            )
        entry = {
            "pid": process.pid,
            "ticks": _start_ticks(process.pid),
            "command": command,
            "port": service.port(self.settings),
            "log": str(log_path),
            "data_dir": str(data_dir),
            "started": time.time(),
        }
        self.state[service.name] = entry
        self._save()
        self._wait_healthy(service, entry, process)

    def _wait_healthy(self, service: Service, entry: dict, process: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if service.healthy(self.settings):
                return
            exited = process.poll() if process else (None if _alive(entry["pid"], entry["ticks"]) else -1)
            if exited is not None:
                raise StackError(
                    f"{service.name} exited ({exited}) while starting; is port {entry['port']} taken by "
                    f"another program?{_port_hint(service.name)} Last lines of {entry['log']}:\n{_tail(entry['log'])}"
                )
            time.sleep(0.25)
        raise StackError(
            f"{service.name} did not become healthy within {self.settings.start_timeout_s:g}s "
            f"(HARNESS_START_TIMEOUT_S); last lines of {entry['log']}:\n{_tail(entry['log'])}"
        )

    def down(self, names: list[str] | None = None,
             on_event: Callable[[str, str], None] = lambda n, m: None) -> None:
        """Stop the services this state dir started (all, or `names`), newest first."""
        for name in reversed([n for n in self.state if names is None or n in names]):
            entry = self.state[name]
            if _alive(entry["pid"], entry["ticks"]):
                _terminate(entry["pid"], SERVICES[name].stop_signal if name in SERVICES else signal.SIGTERM)
                on_event(name, f"stopped pid {entry['pid']}")
            else:
                on_event(name, "was not running")
            del self.state[name]
            self._save()


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; with the pid it names one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _alive(pid: int, ticks: int) -> bool:
    """True when pid is still the process we started, so a recycled pid is never signalled."""
    return _start_ticks(pid) == ticks


def _terminate(pid: int, sig: int, timeout_s: float = 20.0) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it, or it stays a zombie
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


PORT_SETTINGS = {"postgres": "HARNESS_PG_PORT", "redis": "HARNESS_REDIS_PORT", "prometheus": "HARNESS_PROMETHEUS_PORT"}


def _port_hint(name: str) -> str:
    return f" {PORT_SETTINGS[name]} moves it." if name in PORT_SETTINGS else ""


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
