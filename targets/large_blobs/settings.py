"""Handling Large Blobs' settings, declared once: HARNESS_LARGE_BLOBS_*.

The spec (`harness/modules/large_blobs.py`, `settings=Settings`), the target and the locustfile read
this one class. It imports pydantic only, so the harness can load it without the target's dependencies.
The object store's address and keys (HARNESS_S3_*) are the stack's, not the module's: `store.S3Settings`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """HARNESS_LARGE_BLOBS_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_LARGE_BLOBS_", extra="ignore")

    bucket: str = Field(default="large-blobs", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    max_mib: int = Field(default=256, ge=1, le=5000, description="largest object accepted")
    part_mib: int = Field(default=8, ge=5, le=512, description="multipart part size (S3: >= 5 MiB)")
    url_expiry_s: int = Field(default=60, ge=1, le=3600, description="pre-signed URLs' default expiry")
