"""All addresses and knobs of the harness, each overridable by an env variable `HARNESS_<NAME>`.

The defaults are fixed ports off the standard ones, all on loopback, so the embedded stack and the
compose stack answer on the same addresses and every command works against either. A module's own
knobs are not here: each module reads `HARNESS_<MODULE>_*` itself (its spec's `settings`).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PORT_FIELDS = ("pg_port", "pg2_port", "pg_replica_port", "http_cache_port", "redis_port", "prometheus_port",
               "kafka_port", "s3_port", "loadgen_metrics_port")


def _default_project_dir() -> Path:
    """The checkout (or the installed distribution, which carries locustfiles/, targets/ and dashboards/
    beside harness/)."""
    return Path(__file__).resolve().parent.parent


def _is_checkout(path: Path) -> bool:
    return (path / "pyproject.toml").is_file()


def hostport(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets (`[::1]:5432`)."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass  # a name
    return f"{host}:{port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore")

    project_dir: Path = Field(default_factory=_default_project_dir,
                              description="where locustfiles/, targets/ and dashboards/ are")
    state_dir: Path | None = Field(default=None, description="pids, data dirs, logs, generated secrets")
    results_dir: Path | None = None

    bind: str = Field(default="127.0.0.1", description="where the embedded services listen")
    port_offset: int = Field(default=0, ge=0, le=10_000,
                             description="added to every default port (a second stack beside the first)")
    # Where clients find each service: the embedded stack's loopback by default; compose sets names.
    pg_host: str = "127.0.0.1"
    pg_port: int = Field(default=15432, ge=1, le=65535)
    pg_user: str = "harness"
    pg_password: SecretStr | None = Field(default=None, description="default: the embedded stack's generated one")
    pg_database: str = Field(default="harness", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    pg2_host: str = Field(default="127.0.0.1", description="a second PostgreSQL cluster (same user and password)")
    pg2_port: int = Field(default=15433, ge=1, le=65535)
    pg_replica_host: str = "127.0.0.1"
    pg_replica_port: int = Field(default=15434, ge=1, le=65535, description="the primary's streaming replica")
    http_cache_host: str = "127.0.0.1"
    http_cache_port: int = Field(default=18180, ge=1, le=65535, description="the shared HTTP cache (nginx)")
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(default=16379, ge=1, le=65535)
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = Field(default=19090, ge=1, le=65535)
    kafka_host: str = "127.0.0.1"
    kafka_port: int = Field(default=19092, ge=1, le=65535)
    s3_host: str = "127.0.0.1"
    s3_port: int = Field(default=19000, ge=1, le=65535)
    target_host: str = "127.0.0.1"
    target_urls: dict[str, str] = Field(default_factory=dict,
                                        description='per module id, e.g. {"<module>": "http://<host>:<port>"}')
    admin_token: SecretStr | None = Field(default=None,
                                          description="targets' admin routes; default: the embedded stack's")
    loadgen_metrics_host: str = Field(default="127.0.0.1", description="where Locust's exporter listens")
    loadgen_metrics_port: int = Field(default=19646, ge=0, le=65535, description="0 turns it off")
    loadgen_metrics_ports: int = Field(default=9, ge=1, le=64,
                                       description="ports from loadgen_metrics_port on: master, then local workers")
    scrape_interval_s: float = Field(default=1.0, gt=0, le=60)
    start_timeout_s: float = Field(default=180.0, gt=0, description="seeding a module's data is part of it")

    @field_validator("bind")
    @classmethod
    def loopback_only(cls, value: str) -> str:
        if value == "localhost":
            return "127.0.0.1"
        try:
            if ipaddress.ip_address(value).is_loopback:
                return value
        except ValueError:
            pass
        raise ValueError(f"must be a loopback address (127.0.0.0/8, localhost or ::1), got {value!r}")

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        for name in PORT_FIELDS:  # an explicit port wins over the offset
            if self.port_offset and name not in self.model_fields_set and getattr(self, name):
                setattr(self, name, getattr(self, name) + self.port_offset)
        base = self.project_dir if _is_checkout(self.project_dir) else Path.cwd()
        self.state_dir = self.state_dir or base / ".harness"
        self.results_dir = self.results_dir or base / "results"
        return self

    def _secret(self, given: SecretStr | None, file_name: str) -> str | None:
        if given is not None:
            return given.get_secret_value()
        path = self.state_dir / file_name
        return path.read_text().strip() if path.is_file() else None

    @property
    def pg_secret(self) -> str | None:
        """HARNESS_PG_PASSWORD, or the password the embedded stack generated at initdb."""
        return self._secret(self.pg_password, "postgres.password")

    @property
    def admin_secret(self) -> str | None:
        """HARNESS_ADMIN_TOKEN, or the token the embedded stack generated for its targets."""
        return self._secret(self.admin_token, "admin.token")

    @property
    def pg_conninfo(self) -> dict:
        """psycopg connection keywords (no URL quoting problems with any password)."""
        return {"host": self.pg_host, "port": self.pg_port, "user": self.pg_user, "dbname": self.pg_database,
                **({"password": self.pg_secret} if self.pg_secret else {})}

    @property
    def pg_dsn(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(**self.pg_conninfo)

    def pg2(self) -> Settings:
        """These settings with the second cluster in the primary's place (its services reuse the primary's)."""
        return self.model_copy(update={"pg_host": self.pg2_host, "pg_port": self.pg2_port})

    @property
    def pg2_dsn(self) -> str:
        return self.pg2().pg_dsn

    @property
    def pg_replica_dsn(self) -> str:
        """The streaming replica: the primary's database, user and password (a standby is a copy)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(**{**self.pg_conninfo, "host": self.pg_replica_host, "port": self.pg_replica_port})

    @property
    def http_cache_url(self) -> str:
        return f"http://{hostport(self.http_cache_host, self.http_cache_port)}"

    @property
    def redis_url(self) -> str:
        return f"redis://{hostport(self.redis_host, self.redis_port)}/0"

    @property
    def prometheus_url(self) -> str:
        return f"http://{hostport(self.prometheus_host, self.prometheus_port)}"

    @property
    def kafka_bootstrap(self) -> str:
        return hostport(self.kafka_host, self.kafka_port)

    @property
    def s3_url(self) -> str:
        return f"http://{hostport(self.s3_host, self.s3_port)}"

    def module_port(self, port: int) -> int:
        return port + self.port_offset

    def target_url(self, module_id: str, port: int) -> str:
        """A module's target: HARNESS_TARGET_URLS[module] (one container per module), else
        target_host at the module's port (plus the offset)."""
        if module_id in self.target_urls:
            return self.target_urls[module_id].rstrip("/")
        return f"http://{hostport(self.target_host, self.module_port(port))}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The one instance; a bad env value raises here with the variable's name in the message."""
    return Settings()
