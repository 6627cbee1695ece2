"""Long-running Tasks: a job whose length is a parameter (work_ms of waiting, like I/O), three ways.

  POST /<variant>/jobs          {"work_ms", "fail_p", "delay_s", "tag"}
  GET  /<variant>/jobs/{id}     {"status", "progress", "attempts", ...}; 404 for an unknown id

  sync         the request does the work and answers 200 when it is done, with the job's status: "completed",
               or "dead" when its one try failed (nobody retries a request). At most
               HARNESS_LONG_RUNNING_SYNC_SLOTS requests work at once, as an app server's request threads;
               one that finds no slot within HARNESS_LONG_RUNNING_SYNC_WAIT_S is shed (503, not started).
               A delay is refused (422).
  pg_queue     202 + job id; the ledger row and the procrastinate job commit in one transaction
  redis_queue  202 + job id; the ledger row commits, then arq enqueues the job in Redis (a dual write:
               a refused enqueue deletes the row and answers 503)

The queued variants are run by the workers (worker.py); store.py is one attempt, for every variant.
A body over MAX_BODY bytes is a 413 before it is parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Annotated
from uuid import UUID

from fastapi import Header, HTTPException, Path, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from targets.common import TargetSettings, Text, create_app, error_responses
from targets.long_running import queues
from targets.long_running.metrics import ENQUEUED, QUEUE_DEPTH, RUNNING
from targets.long_running.settings import Settings
from targets.long_running.store import (
    DONE_CHANNEL,
    MODULE,
    TERMINAL,
    DeadLettered,
    RetryIn,
    Runner,
    create_schema,
    insert_job,
    job_status,
)
from targets.resources import Postgres

VARIANTS = ("sync", "pg_queue", "redis_queue")
QUEUED = ("pg_queue", "redis_queue")
MAX_BODY = 4096
DEPTH_PERIOD_S = 0.5
TIMEOUT_MARGIN_S = 1.0  # what a job's own database writes may add to its work_ms
log = logging.getLogger("long_running")


class JobRequest(BaseModel):
    work_ms: int = Field(ge=0, le=600_000, description="how long the job works (waits), ms")
    fail_p: float = Field(default=0.0, ge=0, le=1, description="each attempt fails with this probability")
    delay_s: float = Field(default=0.0, ge=0, le=300, description="a scheduled job: start no sooner than this")
    tag: Text = Field(default="adhoc", min_length=1, max_length=64, description="the load's run and phase")


class JobState(BaseModel):
    id: UUID
    status: str
    progress: int = 0
    attempts: int = 0
    error: str | None = None
    accepted_at: float | None = None
    finished_at: float | None = None


JobId = Annotated[UUID, Path(description="the id the POST answered")]
WaitS = Annotated[float, Query(ge=0, le=30, description="long poll: wait up to this for the job to end")]


async def small_body(content_length: Annotated[int | None, Header(ge=0)] = None) -> None:
    if content_length is not None and content_length > MAX_BODY:
        raise HTTPException(413, f"a job request is at most {MAX_BODY} bytes, got {content_length}")


class Arq:
    """arq's Redis pool as a declared resource."""

    name, optional = "redis", False

    def __init__(self, url: str) -> None:
        self.url, self.pool = url, None

    async def open(self) -> None:
        self.pool = await queues.arq_pool(self.url)

    async def check(self) -> None:
        await asyncio.wait_for(self.pool.ping(), 2)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()


class Procrastinate:
    """procrastinate's app (its own small pool: the defer itself runs on the caller's connection)."""

    name, optional = "procrastinate", False

    def __init__(self, dsn: str) -> None:
        self.app = queues.procrastinate_app(dsn, pool_size=2)
        self.opened = None

    async def open(self) -> None:
        self.opened = await self.app.open_async()

    async def check(self) -> None:
        """Nothing beyond PostgreSQL's own check."""

    async def close(self) -> None:
        await self.app.close_async()


class Completions:
    """One LISTEN connection: wakes the requests waiting (`?wait_s=`) for a job to end. It reconnects after
    a failure; a waiter that misses a wake-up still gets the job's state when its wait ends."""

    name, optional = "completions", True

    def __init__(self, dsn: str) -> None:
        self.dsn, self.task, self.waiters = dsn, None, {}
        self.listening = False

    async def open(self) -> None:
        self.task = asyncio.create_task(self.listen())

    async def listen(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    await conn.execute(f"LISTEN {DONE_CHANNEL}")
                    self.listening = True
                    async for note in conn.notifies():
                        for waiter in self.waiters.pop(note.payload, ()):
                            if not waiter.done():
                                waiter.set_result(None)
            except Exception as exc:  # the database went away: wake everyone (they re-read), then reconnect
                log.warning("LISTEN %s failed (%r); reconnecting", DONE_CHANNEL, exc)
            self.listening = False
            for waiters in self.waiters.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            await asyncio.sleep(0.5)

    def waiter(self, job_id: UUID) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(str(job_id), []).append(future)
        return future

    def forget(self, job_id: UUID, future: asyncio.Future) -> None:
        waiters = self.waiters.get(str(job_id), [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self.waiters.pop(str(job_id), None)

    async def check(self) -> None:
        if not self.listening:
            raise ConnectionError(f"not listening on {DONE_CHANNEL}")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class DepthSampler:
    """Queue depth and jobs running per variant, from the ledger, every DEPTH_PERIOD_S."""

    name, optional = "depth_sampler", True

    def __init__(self, pg: Postgres) -> None:
        self.pg, self.task = pg, None

    async def open(self) -> None:
        for variant in VARIANTS:
            QUEUE_DEPTH.labels(MODULE, variant).set(0)
            RUNNING.labels(MODULE, variant).set(0)
        self.task = asyncio.create_task(self.loop())

    async def loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed sample is skipped; the next one may work
                await asyncio.wait_for(self.sample(), 2)
            await asyncio.sleep(DEPTH_PERIOD_S)

    async def sample(self) -> None:
        async with self.pg.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT variant, count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = "
                "'running') FROM lr_jobs WHERE status IN ('queued', 'running') GROUP BY variant")
            rows = {variant: (queued, running) for variant, queued, running in await cur.fetchall()}
        for variant in VARIANTS:
            queued, running = rows.get(variant, (0, 0))
            QUEUE_DEPTH.labels(MODULE, variant).set(queued)
            RUNNING.labels(MODULE, variant).set(running)

    async def check(self) -> None:
        if self.task is not None and self.task.done():
            raise RuntimeError("the depth sampler has stopped")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def unavailable(what: str, exc: BaseException) -> JSONResponse:
    return JSONResponse({"error": f"{what} unavailable, job not accepted: {type(exc).__name__}"}, status_code=503)


class Jobs:
    def __init__(self, pg: Postgres, arq: Arq, pq: Procrastinate, completions: Completions,
                 settings: Settings) -> None:
        self.pg, self.arq, self.pq, self.completions, self.settings = pg, arq, pq, completions, settings
        self.slots = asyncio.Semaphore(settings.sync_slots)
        self.runner = Runner(pg.pool, settings, "sync", "target", max_attempts=1)  # nobody retries a request
        self.enqueued = {v: ENQUEUED.labels(MODULE, v) for v in VARIANTS}

    def refuse_too_long(self, job: JobRequest) -> None:
        if job.work_ms > self.settings.max_work_ms:
            raise HTTPException(422, f"work_ms is at most {self.settings.max_work_ms} "
                                     "(HARNESS_LONG_RUNNING_MAX_WORK_MS)")

    async def sync(self, job: JobRequest) -> Response:
        self.refuse_too_long(job)
        if job.delay_s > 0:
            raise HTTPException(422, "sync runs a job now, inside the request; a delayed job needs a queue")
        job_id = uuid.uuid4()
        try:
            await asyncio.wait_for(self.slots.acquire(), self.settings.sync_wait_s)
        except TimeoutError:
            return JSONResponse({"error": f"busy: no request slot within {self.settings.sync_wait_s:g} s "
                                 "(HARNESS_LONG_RUNNING_SYNC_WAIT_S); not started"}, 503)
        try:
            async with self.pg.pool.connection() as conn:
                await insert_job(conn, job_id, "sync", job.tag, job.work_ms, job.fail_p, 0)
            self.enqueued["sync"].inc()
            try:
                await self.runner.run(job_id)
            except (RetryIn, DeadLettered):  # its one try failed: the request is done, the job is dead
                return JSONResponse({"id": str(job_id), "status": "dead", "error": "the job failed"}, 200)
        finally:
            self.slots.release()
        return JSONResponse({"id": str(job_id), "status": "completed"}, 200)

    async def pg_queue(self, job: JobRequest) -> Response:
        self.refuse_too_long(job)
        job_id = uuid.uuid4()
        async with self.pg.pool.connection() as conn, conn.transaction():
            await insert_job(conn, job_id, "pg_queue", job.tag, job.work_ms, job.fail_p, job.delay_s)
            await queues.defer_pg(self.pq.app, conn, str(job_id), job.delay_s)
        self.enqueued["pg_queue"].inc()
        return JSONResponse({"id": str(job_id), "status": "queued"}, 202)

    async def redis_queue(self, job: JobRequest) -> Response:
        self.refuse_too_long(job)
        cap_ms = (self.settings.redis_job_timeout_s - TIMEOUT_MARGIN_S) * 1000
        if job.work_ms > cap_ms:  # arq cancels a job past its job_timeout and fails it without a retry
            raise HTTPException(422, f"redis_queue runs jobs of at most {cap_ms:g} ms: arq's job_timeout "
                                     "(HARNESS_LONG_RUNNING_REDIS_JOB_TIMEOUT_S) less 1 s")
        job_id = uuid.uuid4()
        async with self.pg.pool.connection() as conn:
            await insert_job(conn, job_id, "redis_queue", job.tag, job.work_ms, job.fail_p, job.delay_s)
        try:
            await asyncio.wait_for(queues.enqueue_redis(self.arq.pool, str(job_id), job.delay_s), 5)
        except Exception as exc:  # Redis refused or timed out: the row must not stay without its job
            async with self.pg.pool.connection() as conn:
                await conn.execute("DELETE FROM lr_jobs WHERE id = %s", (job_id,))
            return unavailable("redis", exc)
        self.enqueued["redis_queue"].inc()
        return JSONResponse({"id": str(job_id), "status": "queued"}, 202)

    def status_route(self, variant: str) -> APIRoute:
        async def status(job_id: JobId, wait_s: WaitS = 0.0) -> JobState:
            """The job's state; with wait_s, answers as soon as the job ends, or after wait_s."""
            waiter = self.completions.waiter(job_id) if wait_s > 0 else None
            try:
                found = await job_status(self.pg.pool, variant, job_id)
                if waiter is not None and found is not None and found["status"] not in TERMINAL:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter, wait_s)
                    found = await job_status(self.pg.pool, variant, job_id)
            finally:
                if waiter is not None:
                    self.completions.forget(job_id, waiter)
            if found is None:
                raise HTTPException(404, f"no {variant} job {job_id}")
            return JobState(**found)

        return APIRoute(f"/{variant}/jobs/{{job_id}}", status, methods=["GET"], response_model=JobState,
                        name=f"{variant}_status", responses=error_responses(404, 422, 503))

    def routes(self) -> list[APIRoute]:
        from fastapi import Depends

        posts = [APIRoute(f"/{v}/jobs", getattr(self, v), methods=["POST"], name=f"{v}_submit",
                          status_code=200 if v == "sync" else 202, dependencies=[Depends(small_body)],
                          responses=error_responses(413, 422, 503)) for v in VARIANTS]
        return [*posts, *(self.status_route(v) for v in VARIANTS)]


def build(settings: TargetSettings | None = None, module: Settings | None = None):
    """The app; the arguments replace the env (tests build their own app this way)."""
    settings, module = settings or TargetSettings(), module or Settings()
    pg = Postgres(settings.pg_dsn, size=settings.pg_pool_size)
    arq, pq, completions = Arq(settings.redis_url), Procrastinate(settings.pg_dsn), Completions(settings.pg_dsn)
    jobs = Jobs(pg, arq, pq, completions, module)

    async def setup() -> None:
        await create_schema(pg.pool)
        await queues.ensure_procrastinate_schema(pq.app, pg.pool)

    return create_app(MODULE, VARIANTS, routes=jobs.routes(), resources=[pg, arq, pq, completions, DepthSampler(pg)],
                      settings=settings, setup=setup)


app = build()
