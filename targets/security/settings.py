"""Security & Access settings, declared once: HARNESS_SECURITY_*.

The spec (`harness/modules/security.py`, `settings=Settings`), the target and the locustfile read this
one class. It imports pydantic only, so the harness can load it without PyJWT or the limiters. The
module has no side process, so it declares no side-process port.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """HARNESS_SECURITY_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_SECURITY_", extra="ignore")

    password: SecretStr = Field(default=SecretStr("harness-demo-password"), description="every demo user's "
                                "password (the module measures verification, not password hashing)")
    token_ttl_s: int = Field(default=600, ge=1, le=86_400, description="a token's or session's lifetime unless "
                             "the login asks for a shorter one")
    limit: int = Field(default=10, ge=1, le=100_000, description="requests a client key may make per window")
    window_s: int = Field(default=2, ge=1, le=3600, description="the limiters' window; the token bucket refills "
                          "limit tokens per window and holds at most limit")
    on_store_error: Literal["closed", "open"] = Field(
        default="closed", description="a limiter whose Redis is down refuses (closed: 503) or admits and says so "
        "(open: 200 with X-RateLimit-Degraded and a counted decision); never a silent multiplication")

    @property
    def rate_per_s(self) -> float:
        """The sustained rate every limiter enforces: limit per window."""
        return self.limit / self.window_s
