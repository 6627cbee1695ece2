"""A worker process of pg_queue (procrastinate) or redis_queue (arq): `python -m targets.long_running.worker`.

The spec declares two workers per queue, each a Process of the stack with its own port (settings.py);
which queue a worker serves follows from its port. Each serves /healthz, /metrics and /admin/knobs on
127.0.0.1:HARNESS_PROCESS_PORT, runs up to HARNESS_LONG_RUNNING_WORKER_CONCURRENCY jobs at once, and
runs every attempt through store.Runner (progress, effect with its idempotency key, retries with
backoff, dead letters). The knob `accepting` stops or resumes taking jobs (a job already running
finishes): workers beyond HARNESS_LONG_RUNNING_WORKERS start without taking any, and the scale_workers
scenario turns the second one on and off.

What each library does when this process is SIGKILLed mid-job: see queues.py. The pg worker also runs
the stalled-job sweep every poll (procrastinate leaves that to the application).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from uuid import UUID

import uvicorn
from pydantic import BaseModel, ConfigDict, Field

from targets.common import TargetSettings, create_app
from targets.knobs import KnobRoutes
from targets.long_running import queues
from targets.long_running.settings import PG_WORKER_PORTS, REDIS_WORKER_PORTS, Settings
from targets.long_running.store import MODULE, RetryIn, Runner, create_schema
from targets.resources import Postgres

log = logging.getLogger("long_running.worker")


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepting: bool | None = Field(default=None, description="take new jobs; null: this worker's place in "
                                   "HARNESS_LONG_RUNNING_WORKERS decides")


def identity(port: int, offset: int) -> tuple[str, int]:
    """(variant, index) of the worker on `port` (with the stack's port offset)."""
    base = port - offset
    if base in PG_WORKER_PORTS:
        return "pg_queue", PG_WORKER_PORTS.index(base)
    if base in REDIS_WORKER_PORTS:
        return "redis_queue", REDIS_WORKER_PORTS.index(base)
    known = PG_WORKER_PORTS + REDIS_WORKER_PORTS
    raise SystemExit(f"HARNESS_PROCESS_PORT {port} (offset {offset}) is none of the workers' ports {known}")


class Worker:
    """The queue's worker loop as a resource of the app; `turn` starts or stops it."""

    name, optional = "worker", False

    def __init__(self, pg: Postgres, settings: Settings, variant: str, index: int, dsn: str, redis_url: str) -> None:
        self.pg, self.settings, self.variant, self.index = pg, settings, variant, index
        self.dsn, self.redis_url = dsn, redis_url
        self.default_accepting = index < settings.workers
        self.accepting = self.default_accepting
        self.runner = Runner(pg.pool, settings, variant, f"{variant}-{index + 1}-{os.getpid()}")
        self.loop_task: asyncio.Task | None = None
        self.supervisor: asyncio.Task | None = None
        self.changed = asyncio.Event()

    def turn(self, knobs: Knobs) -> None:
        self.accepting = self.default_accepting if knobs.accepting is None else knobs.accepting
        self.changed.set()

    async def open(self) -> None:
        await create_schema(self.pg.pool)
        self.supervisor = asyncio.create_task(self.supervise())

    async def check(self) -> None:
        if self.supervisor is None or self.supervisor.done():
            raise RuntimeError("the worker's supervisor has stopped")

    async def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.cancel()
            await asyncio.gather(self.supervisor, return_exceptions=True)

    async def supervise(self) -> None:
        sweep = asyncio.create_task(self.sweep()) if self.variant == "pg_queue" else None
        try:
            while True:
                running = self.loop_task is not None and not self.loop_task.done()
                if self.accepting and not running:
                    self.loop_task = asyncio.create_task(self.consume())
                elif not self.accepting and running:
                    self.loop_task.cancel()
                    await asyncio.gather(self.loop_task, return_exceptions=True)
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 1.0)
        finally:
            for task in (self.loop_task, sweep):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    async def consume(self) -> None:
        await (self.consume_pg() if self.variant == "pg_queue" else self.consume_redis())

    async def run_job(self, job_id: str) -> str:
        return await self.runner.run(UUID(job_id))

    # --- pg_queue: procrastinate --------------------------------------------------------------------
    def pg_app(self):
        from procrastinate.retry import BaseRetryStrategy, RetryDecision

        class Backoff(BaseRetryStrategy):
            def get_retry_decision(self, *, exception, job):
                if not isinstance(exception, RetryIn):
                    return None  # DeadLettered, or a bug: procrastinate marks the job failed
                return RetryDecision(retry_in={"seconds": exception.seconds})

        app = queues.procrastinate_app(self.dsn, pool_size=self.settings.worker_concurrency + 2)
        app.task(name=queues.TASK, queue=queues.PG_QUEUE, retry=Backoff())(self.pg_job)
        return app

    async def pg_job(self, job_id: str) -> None:
        await self.run_job(job_id)

    async def consume_pg(self) -> None:
        app = self.pg_app()
        async with app.open_async():
            await app.run_worker_async(
                queues=[queues.PG_QUEUE], concurrency=self.settings.worker_concurrency, wait=True,
                install_signal_handlers=False, fetch_job_polling_interval=self.settings.poll_s,
                update_heartbeat_interval=self.settings.pg_heartbeat_s,
                stalled_worker_timeout=self.settings.pg_stalled_s, shutdown_graceful_timeout=15)

    async def sweep(self) -> None:
        """Put back jobs whose worker stopped heartbeating (a killed worker's): procrastinate finds them,
        the application decides to retry them."""
        app = queues.procrastinate_app(self.dsn, pool_size=1)
        async with app.open_async():
            while True:
                with contextlib.suppress(Exception):  # another worker's sweep may have retried it first
                    for job in await app.job_manager.get_stalled_jobs(
                            queue=queues.PG_QUEUE, seconds_since_heartbeat=self.settings.pg_stalled_s):
                        with contextlib.suppress(Exception):
                            await app.job_manager.retry_job(job)
                            log.warning("redelivered stalled job %s (%s)", job.id, job.task_kwargs)
                await asyncio.sleep(self.settings.poll_s * 5)

    # --- redis_queue: arq -----------------------------------------------------------------------------
    async def consume_redis(self) -> None:
        import arq
        from arq.worker import func

        settings = self.settings

        async def redis_job(ctx, job_id: str) -> str:
            try:
                return await self.run_job(job_id)
            except RetryIn as retry:
                raise arq.Retry(defer=retry.seconds) from None

        worker = arq.Worker(
            functions=[func(redis_job, name=queues.TASK, max_tries=settings.max_attempts + 5,
                            timeout=settings.redis_job_timeout_s)],
            redis_settings=queues.redis_settings(self.redis_url), queue_name=queues.REDIS_QUEUE,
            max_jobs=settings.worker_concurrency, poll_delay=settings.poll_s, handle_signals=False,
            keep_result=60, health_check_interval=5)
        worker.in_progress_timeout_s = settings.redis_redeliver_s  # arq: job_timeout + 10 s
        try:
            await worker.main()
        finally:
            await worker.close()


def build(port: int) -> object:
    target, settings = TargetSettings(), Settings()
    variant, index = identity(port, int(os.environ.get("HARNESS_PORT_OFFSET", "0") or 0))
    pg = Postgres(target.pg_dsn, size=settings.worker_concurrency + 4)
    worker = Worker(pg, settings, variant, index, target.pg_dsn, target.redis_url)
    return create_app(MODULE, (variant,), routes=KnobRoutes(Knobs, worker.turn).routes(), resources=[pg, worker],
                      settings=target)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    port = int(os.environ.get("HARNESS_PROCESS_PORT", PG_WORKER_PORTS[0]))
    host = os.environ.get("HARNESS_BIND", "127.0.0.1")
    uvicorn.run(build(port), host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
