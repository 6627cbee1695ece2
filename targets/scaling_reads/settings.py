"""Scaling Reads' settings, declared once: HARNESS_SCALING_READS_*.

The spec (`harness/modules/scaling_reads.py`, `settings=Settings`), the target and the locustfile read
this one class. It imports pydantic only, so the harness can load it without the target's dependencies.
The common settings every target reads (HARNESS_PG_DSN, ...) are `targets.common.TargetSettings`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """HARNESS_SCALING_READS_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_SCALING_READS_", extra="ignore")

    products: int = Field(default=100_000, ge=100, description="catalogue size; the claims were set on it")
    reviews: int = Field(default=1_000_000, ge=100)
    cache_ttl_s: int = Field(default=300, ge=1)
    http_max_age_s: int = Field(default=10, ge=1, le=3600,
                                description="http_cache: Cache-Control max-age of a product page, seconds")
    miss_gate: str | None = Field(default=None, description="test only: hold cache fills (store.MissGate); "
                                  "never set in a run")
