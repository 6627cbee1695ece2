"""Dealing with Contention's settings, declared once: HARNESS_CONTENTION_*.

The spec (`harness/modules/contention.py`, `settings=Settings`) and the target read this one class.
It imports pydantic only, so the harness can load it without the target's dependencies.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """HARNESS_CONTENTION_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_CONTENTION_", extra="ignore")

    max_retries: int = Field(default=8, ge=0, le=100, description="optimistic: retries before a 409")
    backoff_ms: float = Field(default=1.0, gt=0, le=1000, description="optimistic: first backoff (full jitter)")
    backoff_cap_ms: float = Field(default=32.0, gt=0, le=10_000, description="optimistic: the longest backoff")
    lock_ttl_ms: int = Field(default=1000, ge=10, le=60_000, description="redis_lock: the lock's lease")
    lock_wait_ms: int = Field(default=2000, ge=1, le=60_000, description="redis_lock: give up acquiring after")
    hold_ttl_ms: int = Field(default=1500, ge=10, le=600_000, description="redis_hold: an unconfirmed hold expires")
