"""Long-running Tasks' settings, declared once: HARNESS_LONG_RUNNING_*, and the workers' ports.

The spec (`harness/modules/long_running.py`, `settings=Settings`), the target and the worker processes
read this one class. It imports pydantic only. Every recovery timeout is small (seconds) so a run sees
it happen; the run records them (run.json keeps the module's settings) and the workshop page quotes them.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The workers' ports: each is a Process(port=...) of the spec; the stack passes it (with the port offset)
# as HARNESS_PROCESS_PORT. Two workers per queue; which queue a worker serves follows from its port.
PG_WORKER_1_PORT, PG_WORKER_2_PORT = 18186, 18187
REDIS_WORKER_1_PORT, REDIS_WORKER_2_PORT = 18188, 18189
PG_WORKER_PORTS = (PG_WORKER_1_PORT, PG_WORKER_2_PORT)
REDIS_WORKER_PORTS = (REDIS_WORKER_1_PORT, REDIS_WORKER_2_PORT)


class Settings(BaseSettings):
    """HARNESS_LONG_RUNNING_*."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_LONG_RUNNING_", extra="ignore")

    workers: int = Field(default=2, ge=1, le=2, description="worker processes per queue that take jobs when no "
                         "knob says otherwise (the stack runs two per queue; the others wait, accepting none)")
    worker_concurrency: int = Field(default=16, ge=1, le=64, description="jobs one worker process runs at once")
    sync_slots: int = Field(default=8, ge=1, le=256, description="sync: requests doing work at once (an app "
                            "server's request threads); the others wait for a slot")
    sync_wait_s: float = Field(default=5.0, gt=0, le=600, description="sync: a request that finds no slot within "
                               "this is answered 503 (shed), as a server's request queue timeout")
    max_attempts: int = Field(default=3, ge=1, le=10, description="tries of a failing job before it is dead-lettered")
    retry_backoff_s: float = Field(default=0.25, ge=0, le=30, description="first retry delay; doubles per attempt")
    progress_steps: int = Field(default=4, ge=1, le=100, description="a job reports progress this many times")
    max_work_ms: int = Field(default=3_000, ge=1, le=600_000, description="the longest job a client may ask for")
    pg_heartbeat_s: float = Field(default=0.5, gt=0, le=60, description="pg_queue: a worker's heartbeat period")
    pg_stalled_s: float = Field(default=2.0, gt=0, le=600, description="pg_queue: a job whose worker's heartbeat "
                                "is older than this is retried (redelivered) by a sweep")
    redis_job_timeout_s: float = Field(default=4.0, gt=0, le=3600, description="redis_queue: arq's job_timeout; "
                                       "a job is cancelled past it")
    redis_redeliver_s: float = Field(default=5.0, gt=0, le=3600, description="redis_queue: a started job whose "
                                     "worker vanished is picked again after this (arq's in-progress key TTL)")
    poll_s: float = Field(default=0.1, gt=0, le=5, description="both queues: a worker's polling period")
