"""Scaling Writes' settings, declared once: HARNESS_SCALING_WRITES_*, and the consumer's port.

The spec (`harness/modules/scaling_writes.py`, `settings=Settings`), the target and the consumer
process read this one class. It imports pydantic only, so the harness can load it without the
target's dependencies. The broker's address (HARNESS_KAFKA_BOOTSTRAP) is the stack's: `store.BrokerSettings`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The consumer's port: the spec's Process(port=CONSUMER_PORT); the stack passes it (with the port offset)
# as HARNESS_PROCESS_PORT, and the consumer falls back to it when run alone.
CONSUMER_PORT = 18182


class Settings(BaseSettings):
    """HARNESS_SCALING_WRITES_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_SCALING_WRITES_", extra="ignore")

    batch_max_rows: int = Field(default=500, ge=1, le=10_000, description="batched: flush at N rows")
    batch_max_ms: float = Field(default=5.0, gt=0, le=1000, description="batched: or T ms after the first row")
    consumer_max_records: int = Field(default=2000, ge=1, le=50_000, description="queued: rows per consumer batch")
    caught_up_lag: int = Field(default=500, ge=0, description="queued: the consumer counts as caught up below this")
