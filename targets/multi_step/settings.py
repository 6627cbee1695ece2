"""Multi-step Processes' settings, declared once: HARNESS_MULTI_STEP_*.

The spec (`harness/modules/multi_step.py`, `settings=Settings`) and the target read this one class. It
imports pydantic only, so the harness can load it without the target's dependencies.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The module's side-process ports, declared once here (the target's port is the spec's): 18192-18197.
PROCESS_PORTS = tuple(range(18192, 18198))


class Settings(BaseSettings):
    """HARNESS_MULTI_STEP_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_MULTI_STEP_", extra="ignore")

    lock_timeout_ms: int = Field(default=2000, ge=10, le=60_000,
                                 description="a participant's statement waits at most this long for a row lock")
    step_attempts: int = Field(default=20, ge=1, le=1000,
                               description="saga_orchestrated: tries of a step whose participant is unreachable")
    step_retry_s: float = Field(default=0.5, gt=0, le=30, description="saga_orchestrated: between those tries")
    recovery_interval_s: float = Field(default=2.0, gt=0, le=60,
                                       description="two_phase: how often in-doubt transactions are looked for")
    in_doubt_after_s: float = Field(default=5.0, gt=0, le=600,
                                    description="two_phase: a prepared transaction this old with no live coordinator "
                                    "call is in doubt (at start-up every one is)")
    pool_size: int = Field(default=12, ge=1, le=60, description="connections per participant database")
