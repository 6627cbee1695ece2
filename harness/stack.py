"""The embedded stack: real services started as child processes on loopback, no Docker.

`up` starts what does not answer yet and waits for health; `down` stops exactly the pids recorded in
the state file. A service that already answers on its port and is not ours (the compose stack, a
system service) is used as it is and never stopped. Faults (`fault_begin` / `fault_end`) kill, stop
or restart a service this stack started, never another. The services are in `services.py`.

The state file is the truth: every public method reads it first, so several `Stack` objects (the
test session's, a run's) agree on the pids.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness import pids
from harness.service import Service, StackError, check_listen_address, ensure_secret, find_binary, require_project_file
from harness.service_user import as_service_user, data_dir_for
from harness.services import SERVICES, prometheus_config, services_for
from harness.settings import Settings

__all__ = ["SERVICES", "Stack", "StackError", "find_binary", "prometheus_config", "require_project_file",
           "services_for"]

Action = Literal["kill", "stop", "restart"]
FAULT_ACTIONS = ("kill", "stop", "restart")
ADMIN_TOKEN_FILE = "admin.token"


@dataclass
class Stack:
    settings: Settings
    state: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._load()

    @property
    def state_file(self) -> Path:
        return self.settings.state_dir / "state.json"

    def _load(self) -> None:
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _save(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.state_file)

    def owns(self, name: str) -> bool:
        entry = self.state.get(name)
        return bool(entry) and pids.alive(entry["pid"], entry["ticks"])

    def healthy(self, name: str) -> bool:
        service = SERVICES[name] if name in SERVICES else None  # None: its spec no longer loads
        if service is None or service.healthy is None:  # no port to ask: healthy while our process runs
            return self.owns(name) and not pids.stopped(self.state[name]["pid"])
        return service.healthy(self.settings)

    def status(self, names: list[str] | None = None) -> list[dict]:
        """Every service (or `names`), and whatever the state file says runs, even a service whose
        module's spec no longer loads."""
        self._load()
        rows = []
        for name in names or list(dict.fromkeys([*SERVICES, *self.state])):
            entry = self.state.get(name, {})
            healthy = self.healthy(name)
            owner = "harness" if self.owns(name) else ("external" if healthy else "-")
            port = SERVICES[name].port(self.settings) if name in SERVICES else entry.get("port")
            rows.append({"service": name, "port": port, "healthy": healthy,
                         "owner": owner, "pid": entry.get("pid") if owner == "harness" else None,
                         "log": entry.get("log"), "fault": entry.get("fault")})
        return rows

    def up(self, names: list[str], on_event: Callable[[str, str], None] = lambda n, m: None) -> list[str]:
        """Start what does not answer yet, in order; returns the names this call started.

        A service left in a fault (an interrupted run) is brought back first."""
        self._load()
        if self.settings.admin_token is None:
            ensure_secret(self.settings.state_dir / ADMIN_TOKEN_FILE)  # targets get it as HARNESS_ADMIN_TOKEN
        started = []
        for name in names:
            service = SERVICES[name]
            if self.state.get(name, {}).get("fault"):
                self.fault_end(name, self.state[name]["fault"])
                on_event(name, "brought back from an unfinished fault")
            if self.healthy(name):
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
        check_listen_address(service, self.settings)
        data_dir = data_dir_for(service, self.settings.state_dir)
        service.prepare(self.settings, data_dir)
        command = service.command(self.settings, data_dir)
        if service.needs_unprivileged_user:
            command = as_service_user(command)
        self._spawn(service, command, data_dir)

    def _spawn(self, service: Service, command: list[str], data_dir: Path) -> None:
        log_path = self.settings.state_dir / f"{service.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        pid, ticks = pids.launch(command, log_path, {**os.environ, **service.env(self.settings)},
                                 self.settings.project_dir)
        entry = {"pid": pid, "ticks": ticks, "command": command, "port": service.port(self.settings),
                 "log": str(log_path), "data_dir": str(data_dir), "started": time.time()}
        self.state[service.name] = entry
        self._save()
        self._wait_healthy(service, entry)

    def _wait_healthy(self, service: Service, entry: dict) -> None:
        if service.healthy is None:  # nothing to ask: it counts as started once it survives a moment
            if pids.survives(entry["pid"], entry["ticks"], 1.0):
                return
            raise StackError(f"{service.name} exited while starting; last lines of {entry['log']}:\n"
                             f"{_tail(entry['log'])}")
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if service.healthy(self.settings):
                return
            if not pids.alive(entry["pid"], entry["ticks"]):
                raise StackError(
                    f"{service.name} exited while starting; is port {entry['port']} taken by another program?"
                    f"{_port_hint(service)} Last lines of {entry['log']}:\n{_tail(entry['log'])}"
                )
            time.sleep(0.25)
        raise StackError(
            f"{service.name} did not become healthy within {self.settings.start_timeout_s:g}s "
            f"(HARNESS_START_TIMEOUT_S); last lines of {entry['log']}:\n{_tail(entry['log'])}"
        )

    def down(self, names: list[str] | None = None,
             on_event: Callable[[str, str], None] = lambda n, m: None) -> None:
        """Stop the services this state dir started (all, or `names`), newest first."""
        self._load()
        for name in reversed([n for n in self.state if names is None or n in names]):
            entry = self.state[name]
            if pids.alive(entry["pid"], entry["ticks"]):
                stop_signal = SERVICES[name].stop_signal if name in SERVICES else signal.SIGTERM
                pids.terminate(entry["pid"], stop_signal, resume=entry.get("fault") == "stop")
                on_event(name, f"stopped pid {entry['pid']}")
            else:
                on_event(name, "was not running")
            del self.state[name]
            self._save()

    # --- faults ----------------------------------------------------------------------------------

    def fault_begin(self, name: str, action: Action) -> None:
        """kill (SIGKILL every process of the service), stop (SIGSTOP them) or restart (stop it
        gracefully) a service this stack started; `fault_end` with the same action undoes it."""
        self._load()
        entry = self._owned_entry(name, action)
        if entry.get("fault"):
            raise StackError(f"{name} is already in a {entry['fault']} fault; end it first")
        tree = pids.tree(entry["pid"])
        entry.update(fault=action, fault_started=time.time())
        self._save()
        if action == "kill":
            pids.signal_tree(tree, signal.SIGKILL)
            pids.wait_for(lambda: pids.all_gone(tree), 20.0, f"{name} (pids {tree}) to die after SIGKILL")
        elif action == "stop":
            pids.signal_tree(tree, signal.SIGSTOP)
            pids.wait_for(lambda: pids.all_stopped(tree), 10.0, f"{name} (pids {tree}) to stop")
        else:
            pids.terminate(entry["pid"], SERVICES[name].stop_signal)

    def fault_end(self, name: str, action: Action) -> None:
        """Undo `fault_begin(name, action)` and wait until the service is healthy again."""
        self._load()
        entry = self.state.get(name)
        if action not in FAULT_ACTIONS:
            raise StackError(f"unknown fault action {action!r}; expected one of {', '.join(FAULT_ACTIONS)}")
        if not entry or entry.get("fault") != action:
            raise StackError(f"no {action} fault is active on {name}")
        service = SERVICES[name]
        if action == "stop" and pids.alive(entry["pid"], entry["ticks"]):
            tree = pids.tree(entry["pid"])
            pids.signal_tree(tree, signal.SIGCONT)
            pids.wait_for(lambda: not any(map(pids.stopped, tree)), 10.0, f"{name} to resume")
            del entry["fault"], entry["fault_started"]
            self._save()
            self._wait_healthy(service, entry)
        else:  # start it again; also a stopped process that died meanwhile
            if pids.alive(entry["pid"], entry["ticks"]):  # a restart whose graceful stop is still under way
                pids.terminate(entry["pid"], service.stop_signal)
            pids.settle(entry["pid"], 5.0)
            self._spawn(service, entry["command"], Path(entry["data_dir"]))
        service.after_start(self.settings)

    def _owned_entry(self, name: str, action: str) -> dict:
        if action not in FAULT_ACTIONS:
            raise StackError(f"unknown fault action {action!r}; expected one of {', '.join(FAULT_ACTIONS)}")
        if name not in SERVICES:
            raise StackError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
        if not self.owns(name):
            where = "it is external" if self.healthy(name) else "it is not running"
            raise StackError(f"the harness did not start {name} ({where}); faults need the embedded stack")
        return self.state[name]


def _port_hint(service: Service) -> str:
    return f" {service.port_setting} moves it." if service.port_setting else ""


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
