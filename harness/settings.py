"""All addresses and knobs of the harness, each overridable by an env variable `HARNESS_<NAME>`.

The defaults are fixed ports off the standard ones, all on loopback, so the embedded stack and the
compose stack answer on the same addresses and every command works against either.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore")

    project_dir: Path = PROJECT_DIR
    state_dir: Path = Field(default=PROJECT_DIR / ".harness", description="pids, ports, data dirs, logs")
    results_dir: Path = PROJECT_DIR / "results"

    bind: str = Field(default="127.0.0.1", description="where the embedded services listen")
    # Where clients find each service: the embedded stack's loopback by default; compose sets names.
    pg_host: str = "127.0.0.1"
    pg_port: int = Field(default=15432, ge=1, le=65535)
    pg_user: str = "harness"
    pg_password: SecretStr | None = None
    pg_database: str = "harness"
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(default=16379, ge=1, le=65535)
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = Field(default=19090, ge=1, le=65535)
    target_host: str = "127.0.0.1"
    loadgen_metrics_host: str = Field(default="127.0.0.1", description="where Locust's exporter listens")
    loadgen_metrics_port: int = Field(default=19646, ge=0, le=65535, description="0 turns it off")
    loadgen_metrics_ports: int = Field(default=9, ge=1, le=64,
                                       description="ports from loadgen_metrics_port on: master, then local workers")
    scrape_interval_s: float = Field(default=1.0, gt=0, le=60)
    start_timeout_s: float = Field(default=180.0, gt=0, description="seeding the catalogue is part of it")

    # Catalogue size of scaling_reads; tests shrink it, the defaults are what the claims were set on.
    products: int = Field(default=100_000, ge=100)
    reviews: int = Field(default=1_000_000, ge=100)

    @field_validator("bind")
    @classmethod
    def loopback_only(cls, value: str) -> str:
        if not (value.startswith("127.") or value in {"localhost", "::1"}):
            raise ValueError(f"must be a loopback address (127.0.0.0/8, localhost or ::1), got {value!r}")
        return value

    @property
    def pg_dsn(self) -> str:
        password = f":{self.pg_password.get_secret_value()}" if self.pg_password else ""
        return f"postgresql://{self.pg_user}{password}@{self.pg_host}:{self.pg_port}/{self.pg_database}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.prometheus_host}:{self.prometheus_port}"

    def target_url(self, port: int) -> str:
        return f"http://{self.target_host}:{port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The one instance; a bad env value raises here with the variable's name in the message."""
    return Settings()
