"""Real-time Updates' settings, declared once: HARNESS_REALTIME_*, and the publisher's port.

The spec (`harness/modules/realtime.py`, `settings=Settings`), the target, the publisher process and
the locustfile read this one class. It imports pydantic only, so the harness can load it without the
target's dependencies.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The publisher's port: the spec's Process(port=PUBLISHER_PORT); the stack passes it (with the port
# offset) as HARNESS_PROCESS_PORT, and the publisher falls back to it when run alone.
PUBLISHER_PORT = 18185


class Settings(BaseSettings):
    """HARNESS_REALTIME_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_REALTIME_", extra="ignore")

    publish_rate: float = Field(default=10.0, gt=0, le=1000, description="messages/s per channel, unless a "
                                "phase asks the publisher for another rate")
    payload_bytes: int = Field(default=100, ge=0, le=65536)
    channels: int = Field(default=1, ge=1, le=1000)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60, description="short polling's interval")
