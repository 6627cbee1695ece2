"""The two queues, each through a library made for it; the target enqueues, the workers (worker.py) run.

pg_queue: procrastinate (PostgreSQL). Chosen over pgqueuer because it runs on psycopg 3, the driver
the project already uses, ships its schema and its `SKIP LOCKED` fetch as SQL functions, and defers
on a connection the caller gives it (`configure(connection=...)`): the ledger row and the job are
inserted in one transaction, so a job exists exactly when its row does. Workers heartbeat
(`update_heartbeat_interval`); a job whose worker's heartbeat is older than HARNESS_LONG_RUNNING_PG_STALLED_S
is found by `get_stalled_jobs` and put back by `retry_job`, which each worker's sweep does every poll.

redis_queue: arq (Redis, asyncio like the target and the workers). Chosen over dramatiq (threads, its
own CLI and processes), saq and celery (visibility timeout, 1 h by default, and a thread or prefork
pool) because its recovery is one readable mechanism: a started job keeps its place in the queue's
sorted set under an in-progress key with a TTL, and when a killed worker's key expires any worker
picks it again. arq sets that TTL to job_timeout + 10 s; the worker sets it to
HARNESS_LONG_RUNNING_REDIS_REDELIVER_S (reported as a run parameter) so a run sees it. The enqueue is
a dual write: the ledger row commits in PostgreSQL, then the job goes to Redis; if Redis refuses, the
row is deleted and the client gets 503.
"""

from __future__ import annotations

from datetime import timedelta

PG_QUEUE = "long_running"
TASK = "long_running_job"
REDIS_QUEUE = "arq:long_running"


def procrastinate_app(dsn: str, pool_size: int):
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=pool_size))


async def ensure_procrastinate_schema(app, pool) -> None:
    """procrastinate ships its schema; apply it once (under the module's advisory lock)."""
    from targets.long_running.store import MODULE
    from targets.resources import advisory_lock

    async with pool.connection() as conn, advisory_lock(conn, MODULE, "procrastinate schema"):
        cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        (exists,) = await cur.fetchone()
        if not exists:
            await conn.execute(app.schema_manager.get_schema())


async def defer_pg(app, conn, job_id: str, delay_s: float) -> None:
    """On the caller's connection, inside its transaction: the job commits with the ledger row."""
    options = {"schedule_in": {"seconds": delay_s}} if delay_s > 0 else {}
    await app.configure_task(TASK, queue=PG_QUEUE, connection=conn, **options).defer_async(job_id=job_id)


def redis_settings(url: str):
    from arq.connections import RedisSettings

    return RedisSettings.from_dsn(url)


async def arq_pool(url: str):
    from arq import create_pool

    return await create_pool(redis_settings(url), default_queue_name=REDIS_QUEUE)


async def enqueue_redis(pool, job_id: str, delay_s: float) -> bool:
    """True if arq took it (False: a job with this id is already queued)."""
    job = await pool.enqueue_job(TASK, job_id, _job_id=job_id, _queue_name=REDIS_QUEUE,
                                 _defer_by=timedelta(seconds=delay_s) if delay_s > 0 else None)
    return job is not None
