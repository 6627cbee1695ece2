"""The job ledger in PostgreSQL, and one attempt of a job, the same for every variant.

The ledger is the application's view of its jobs, whatever queue carries them:

  lr_jobs              one row per accepted job: status (queued, running, completed, dead), progress
                       (percent, written by the worker), attempts, accepted / scheduled / started / finished
  lr_attempts          one row per attempt: its worker, start, last heartbeat, end and outcome; an attempt
                       that never ended (its worker died) is closed as `abandoned` by the next one, which
                       records how long after the last heartbeat it came (the redelivery time)
  lr_effects           the job's side effect, keyed by the job id (the idempotency key): a retried or
                       redelivered job finds its key and does not do it again
  lr_effects_unkeyed   the same effect as a worker without the key does it (a plain INSERT): every
                       redelivery past the effect doubles it. Written beside the keyed one, so one run shows
                       what the key prevents; nothing reads it but the finding
  lr_dead_letters      jobs whose last try failed: the dead-letter queue, kept for a person to replay

A job works in `progress_steps` equal sleeps (I/O-like waiting: the two cores stay for the load). After
the first step it decides whether this attempt fails (probability `fail_p` from the request) and, if
not, does its side effect; it completes after the last step. A failed attempt is retried with an
exponential backoff until `max_attempts`, then dead-lettered. A killed attempt counts as one.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from targets.long_running.metrics import (
    COMPLETED,
    COMPLETION,
    DEAD_LETTERED,
    REDELIVERIES,
    REDELIVERY,
    RETRIED,
    START_DELAY,
    STARTED,
)
from targets.long_running.settings import Settings

MODULE = "long_running"
STATUSES = ("queued", "running", "completed", "dead")
TERMINAL = ("completed", "dead")
DONE_CHANNEL = "long_running_done"

SCHEMA = """
CREATE TABLE IF NOT EXISTS lr_jobs (
    id uuid PRIMARY KEY,
    variant text NOT NULL,
    tag text NOT NULL,
    work_ms integer NOT NULL,
    fail_p real NOT NULL,
    status text NOT NULL DEFAULT 'queued',
    progress integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    accepted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_after timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    error text
);
CREATE INDEX IF NOT EXISTS lr_jobs_tag ON lr_jobs (tag);
CREATE INDEX IF NOT EXISTS lr_jobs_open ON lr_jobs (variant, status) WHERE status IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS lr_attempts (
    job_id uuid NOT NULL,
    attempt integer NOT NULL,
    worker text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    beat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at timestamptz,
    outcome text,
    redelivery_s real,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS lr_effects (job_id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS lr_effects_unkeyed (
    id bigserial PRIMARY KEY, job_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS lr_effects_unkeyed_job ON lr_effects_unkeyed (job_id);
CREATE TABLE IF NOT EXISTS lr_dead_letters (
    job_id uuid PRIMARY KEY, variant text NOT NULL, attempts integer NOT NULL, error text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
"""


class JobFailed(Exception):
    """This attempt failed (the job's own failure, drawn with its fail_p)."""


@dataclass(frozen=True)
class RetryIn(Exception):
    """The attempt failed and the job gets another try after `seconds`."""

    seconds: float
    attempt: int


class DeadLettered(Exception):
    """The job's last try failed: it is in lr_dead_letters, and the queue should mark it failed."""


async def create_schema(pool: AsyncConnectionPool) -> None:
    from targets.resources import advisory_lock

    async with pool.connection() as conn, advisory_lock(conn, MODULE, "schema"):
        await conn.execute(SCHEMA)


async def insert_job(conn, job_id: UUID, variant: str, tag: str, work_ms: int, fail_p: float,
                     delay_s: float) -> None:
    await conn.execute(
        "INSERT INTO lr_jobs (id, variant, tag, work_ms, fail_p, run_after) VALUES (%s, %s, %s, %s, %s, "
        "CASE WHEN %s > 0 THEN clock_timestamp() + make_interval(secs => %s) END)",
        (job_id, variant, tag, work_ms, fail_p, delay_s, delay_s))


async def job_status(pool: AsyncConnectionPool, variant: str, job_id: UUID) -> dict | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, progress, attempts, error, extract(epoch FROM accepted_at), "
            "extract(epoch FROM finished_at) FROM lr_jobs WHERE id = %s AND variant = %s", (job_id, variant))
        row = await cur.fetchone()
    if row is None:
        return None
    status, progress, attempts, error, accepted, finished = row
    return {"id": str(job_id), "status": status, "progress": progress, "attempts": attempts, "error": error,
            "accepted_at": float(accepted), "finished_at": None if finished is None else float(finished)}


async def notify_done(conn, job_id: UUID) -> None:
    """Sent when the transaction that ends the job commits: the target wakes the clients waiting on it."""
    await conn.execute("SELECT pg_notify(%s, %s)", (DONE_CHANNEL, str(job_id)))


class Runner:
    """Runs attempts of jobs for one variant in one process (a worker, or the target for sync)."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, variant: str, worker: str,
                 max_attempts: int | None = None) -> None:
        self.pool, self.settings, self.variant, self.worker = pool, settings, variant, worker
        self.max_attempts = max_attempts or settings.max_attempts
        labels = (MODULE, variant)
        self.started, self.completed = STARTED.labels(*labels), COMPLETED.labels(*labels)
        self.retried, self.dead = RETRIED.labels(*labels), DEAD_LETTERED.labels(*labels)
        self.redeliveries, self.redelivery = REDELIVERIES.labels(*labels), REDELIVERY.labels(*labels)
        self.start_delay, self.completion = START_DELAY.labels(*labels), COMPLETION.labels(*labels)

    async def run(self, job_id: UUID) -> str:
        """One attempt: "completed", "skipped" (already finished: a redelivery after the end), or raises
        RetryIn (another try is due) or DeadLettered (no try left)."""
        begun = await self._begin(job_id)
        if begun is None:
            return "skipped"
        attempt, work_ms, fail_p = begun
        step_s = work_ms / 1000 / self.settings.progress_steps
        for step in range(1, self.settings.progress_steps + 1):
            await asyncio.sleep(step_s)
            if step == 1:
                if random.random() < fail_p:
                    return await self._fail(job_id, attempt, "the job failed (drawn with its fail_p)")
                await self._effect(job_id)
            if step < self.settings.progress_steps:
                await self._progress(job_id, attempt, 100 * step // self.settings.progress_steps)
        await self._complete(job_id, attempt)
        return "completed"

    async def _begin(self, job_id: UUID) -> tuple[int, int, float] | None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE lr_jobs SET status = 'running', attempts = attempts + 1, "
                "started_at = coalesce(started_at, clock_timestamp()) WHERE id = %s AND status IN ('queued', "
                "'running') RETURNING attempts, work_ms, fail_p, extract(epoch FROM clock_timestamp() - "
                "coalesce(run_after, accepted_at))", (job_id,))
            row = await cur.fetchone()
            if row is None:
                return None
            attempt, work_ms, fail_p, waited = row
            cur = await conn.execute(
                "WITH abandoned AS (UPDATE lr_attempts SET ended_at = clock_timestamp(), outcome = 'abandoned' "
                "WHERE job_id = %s AND ended_at IS NULL RETURNING beat_at) "
                "INSERT INTO lr_attempts (job_id, attempt, worker, redelivery_s) VALUES (%s, %s, %s, "
                "(SELECT extract(epoch FROM clock_timestamp() - max(beat_at)) FROM abandoned)) "
                "ON CONFLICT (job_id, attempt) DO UPDATE SET worker = excluded.worker RETURNING redelivery_s",
                (job_id, job_id, attempt, self.worker))
            (redelivery_s,) = await cur.fetchone()
        self.started.inc()
        if attempt == 1:
            self.start_delay.observe(max(0.0, float(waited)))
        if redelivery_s is not None:
            self.redeliveries.inc()
            self.redelivery.observe(redelivery_s)
        return attempt, work_ms, fail_p

    async def _effect(self, job_id: UUID) -> None:
        """The side effect, checked against its idempotency key (the job id); and, beside it, the same
        effect without a key, as a naive worker would do it."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO lr_effects (job_id) VALUES (%s) ON CONFLICT DO NOTHING", (job_id,))
            await conn.execute("INSERT INTO lr_effects_unkeyed (job_id) VALUES (%s)", (job_id,))

    async def _progress(self, job_id: UUID, attempt: int, percent: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("UPDATE lr_jobs SET progress = greatest(progress, %s) WHERE id = %s", (percent, job_id))
            await conn.execute("UPDATE lr_attempts SET beat_at = clock_timestamp() WHERE job_id = %s AND attempt = %s",
                               (job_id, attempt))

    async def _complete(self, job_id: UUID, attempt: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE lr_jobs SET status = 'completed', progress = 100, finished_at = clock_timestamp() "
                "WHERE id = %s AND status = 'running' RETURNING extract(epoch FROM clock_timestamp() - accepted_at)",
                (job_id,))
            row = await cur.fetchone()
            await self._end_attempt(conn, job_id, attempt, "completed")
            await notify_done(conn, job_id)
        if row is not None:
            self.completed.inc()
            self.completion.observe(float(row[0]))

    async def _fail(self, job_id: UUID, attempt: int, error: str) -> str:
        final = attempt >= self.max_attempts
        async with self.pool.connection() as conn, conn.transaction():
            await self._end_attempt(conn, job_id, attempt, "failed")
            if final:
                cur = await conn.execute(
                    "UPDATE lr_jobs SET status = 'dead', finished_at = clock_timestamp(), error = %s "
                    "WHERE id = %s AND status = 'running' RETURNING variant", (error, job_id))
                row = await cur.fetchone()
                if row is not None:
                    await conn.execute("INSERT INTO lr_dead_letters (job_id, variant, attempts, error) VALUES "
                                       "(%s, %s, %s, %s) ON CONFLICT DO NOTHING", (job_id, row[0], attempt, error))
                    await notify_done(conn, job_id)
            else:
                await conn.execute("UPDATE lr_jobs SET status = 'queued', error = %s WHERE id = %s AND "
                                   "status = 'running'", (error, job_id))
        if final:
            self.dead.inc()
            raise DeadLettered(f"job {job_id}: {error}, after {attempt} attempts")
        self.retried.inc()
        raise RetryIn(self.settings.retry_backoff_s * 2 ** (attempt - 1), attempt)

    @staticmethod
    async def _end_attempt(conn, job_id: UUID, attempt: int, outcome: str) -> None:
        await conn.execute("UPDATE lr_attempts SET ended_at = clock_timestamp(), outcome = %s "
                           "WHERE job_id = %s AND attempt = %s", (outcome, job_id, attempt))

