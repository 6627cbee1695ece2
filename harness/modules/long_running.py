"""Managing Long-running Tasks: the request does the work, or a job queue in PostgreSQL or in Redis does.

The module's one declaration (docs/adding-a-module.md). `targets/long_running/` serves the variants under
`/<variant>/jobs`; four worker processes (two per queue, targets/long_running/worker.py) run the queued
jobs. The question: what does moving work off the request buy, and what does a crashed worker cost
under each queue?
"""

from __future__ import annotations

from harness.claims import Claim
from harness.spec import (
    Fault,
    InvariantSpec,
    Knob,
    LinePlot,
    Load,
    ModuleSpec,
    Process,
    RequestMetric,
    Scenario,
    ServerMetric,
    Variant,
)
from targets.long_running.settings import PG_WORKER_PORTS, REDIS_WORKER_PORTS, Settings

SUBMIT = "POST /jobs"
STATUS = "GET /jobs/[id]"
COMPLETED = "job completed"
DEAD = "job dead-lettered"
QUEUED = ("pg_queue", "redis_queue")
WORKER_APP = "targets.long_running.worker"
PG_WORKERS = tuple(f"long_running_pg_worker_{i + 1}" for i in range(len(PG_WORKER_PORTS)))
REDIS_WORKERS = tuple(f"long_running_redis_worker_{i + 1}" for i in range(len(REDIS_WORKER_PORTS)))


def _work(ms: int, *more: str) -> tuple[str, ...]:
    return ("--work-ms", str(ms), *more)


def _second_worker(accepting: bool) -> tuple[Knob, ...]:
    return (Knob(service=PG_WORKERS[1], name="accepting", value=accepting),
            Knob(service=REDIS_WORKERS[1], name="accepting", value=accepting))


SPEC = ModuleSpec(
    id="long_running",
    title="Managing Long-running Tasks",
    port=18106,
    services=("postgres", "redis"),
    processes=tuple(Process(name=name, app=WORKER_APP, port=port) for name, port in
                    zip((*PG_WORKERS, *REDIS_WORKERS), (*PG_WORKER_PORTS, *REDIS_WORKER_PORTS), strict=True)),
    settings=Settings,
    variants=(
        Variant(name="sync", sentence="the request does the work and answers when it is done; a bounded number of "
                "requests work at once, the others wait for a slot"),
        Variant(name="pg_queue", sentence="202 and a job id; the job commits with its ledger row in PostgreSQL "
                "(procrastinate, SKIP LOCKED) and worker processes run it, with retries, a dead-letter table and "
                "redelivery of a dead worker's jobs after a heartbeat timeout"),
        Variant(name="redis_queue", sentence="202 and a job id; the job goes to a Redis queue (arq) after its ledger "
                "row commits, and worker processes run it, with retries, a dead-letter table and redelivery after "
                "an in-progress key expires"),
    ),
    scenarios=(
        Scenario(name="saturation", description="closed model, 40 users each waiting for its job, 200 ms jobs: "
                 "sync is bounded by its slots, queued acceptance stays flat", users=40, duration_s=5, warmup_s=1,
                 options=_work(200)),
        Scenario(name="long_jobs", description="open model, 10 jobs/s of 2 s each: more than sync's slots hold, "
                 "so its requests wait and are shed; the queues accept at once and finish within their capacity",
                 loads=(Load(name="open", rate=10, users=120),), duration_s=6, warmup_s=1,
                 error_budgets={"sync": 1.0}, options=_work(2000)),
        Scenario(name="worker_crash", description="open model, 10 jobs/s of 1 s each; every worker of each "
                 "queue is SIGKILLed at 2 s and restarted 2 s later (a worker runs up to 16 jobs at once, so one "
                 "of two may hold none of the jobs in flight): their jobs are redelivered and their effect happens "
                 "once", variants=QUEUED, loads=(Load(name="open", rate=10, users=60),), duration_s=10,
                 warmup_s=1, options=_work(1000),
                 faults=tuple(Fault(service=worker, action="kill", at_s=2, duration_s=2)
                              for worker in (*PG_WORKERS, *REDIS_WORKERS))),
        Scenario(name="poison", description="open model, 10 jobs/s of 200 ms; a fifth of the jobs always fail: "
                 "retried with backoff, then dead-lettered", variants=QUEUED,
                 loads=(Load(name="open", rate=10, users=60),), duration_s=5, warmup_s=1,
                 options=_work(200, "--poison-share", "0.2")),
        Scenario(name="scale_workers_1", description="closed model, 48 users, 1 s jobs, one worker per queue "
                 "taking jobs: the queue's completion rate with one worker", variants=QUEUED, users=48,
                 duration_s=4, warmup_s=1, knobs=_second_worker(False), options=_work(1000)),
        Scenario(name="scale_workers_2", description="the same with both workers taking jobs",
                 variants=QUEUED, users=48, duration_s=4, warmup_s=1, knobs=_second_worker(True),
                 options=_work(1000)),
    ),
    main_scenario="long_jobs",
    repeat=1,
    latency_of=SUBMIT,
    request_metrics=(RequestMetric(name="completion", request=COMPLETED, label="job completion"),),
    server_metrics=(
        ServerMetric(name="enqueued", label="jobs enqueued", kind="increase",
                     numerator="harness_lr_jobs_enqueued_total"),
        ServerMetric(name="completed_per_s", label="jobs completed/s (server)", kind="rate",
                     numerator="harness_lr_jobs_completed_total"),
        ServerMetric(name="retried", label="attempts retried", kind="increase",
                     numerator="harness_lr_jobs_retried_total"),
        ServerMetric(name="dead_lettered", label="jobs dead-lettered", kind="increase",
                     numerator="harness_lr_jobs_dead_lettered_total"),
        ServerMetric(name="retries_per_dead_letter", label="retries per dead letter", numerator=
                     "harness_lr_jobs_retried_total", denominator="harness_lr_jobs_dead_lettered_total"),
        ServerMetric(name="redeliveries", label="redeliveries", kind="increase",
                     numerator="harness_lr_redeliveries_total"),
        ServerMetric(name="redelivery_s", label="heartbeat to redelivery, mean", unit="s",
                     numerator="harness_lr_redelivery_seconds_sum", denominator="harness_lr_redelivery_seconds_count"),
        ServerMetric(name="start_delay_s", label="enqueue to start, mean", unit="s",
                     numerator="harness_lr_start_delay_seconds_sum",
                     denominator="harness_lr_start_delay_seconds_count"),
        ServerMetric(name="depth_peak", label="queue depth peak", unit="jobs", kind="gauge",
                     numerator="harness_lr_queue_depth", reduce="max"),
    ),
    invariants=(
        InvariantSpec(name="lost_jobs", sentence="every accepted job ends completed or dead-lettered, after a "
                      "bounded settle"),
        InvariantSpec(name="effects_not_once", sentence="every completed job's keyed side effect happened exactly "
                      "once, and no dead-lettered job's happened"),
        InvariantSpec(name="phantom_jobs", sentence="no job completed or dead-lettered that the load was never "
                      "told was accepted", enforced_for=QUEUED),
        InvariantSpec(name="dead_letters_mismatch", sentence="the dead-lettered jobs are exactly the poisoned ones"),
        InvariantSpec(name="unkeyed_doubles", sentence="jobs whose side effect, done without the idempotency key, "
                      "happened more than once (a finding: what the key prevents)", enforced_for=()),
    ),
    columns=("rps", "p50_ms", "p99_ms", "failures", "completed_per_s", "completion_rps", "completion_p50_ms",
             "completion_p99_ms", "enqueued", "retried", "dead_lettered", "redeliveries", "redelivery_s",
             "start_delay_s", "depth_peak", "cpu_ms_per_request", "target_rate", "dropped"),
    compare=("p50_ms", "p99_ms", "completed_per_s", "completion_p99_ms"),
    progress=("completed_per_s", "completion_p99_ms", "redeliveries"),
    bar_plots=("completed_per_s",),
    line_plots=(LinePlot(title="Completion rate against worker processes", x_label="workers taking jobs",
                         x=(("scale_workers_1", 1), ("scale_workers_2", 2)), metrics=("completed_per_s",)),),
    # Thresholds: from measured runs on a shared 2-core machine, with margin (the workshop page has the runs).
    claims=(
        Claim("saturation_accept_flat", "At saturation, pg_queue's p99 acceptance latency is at most 0.8x sync's "
              "p99 request latency: a queued request answers once the job is stored, a sync one once it is done.",
              "p99_ms", "pg_queue", "<=", 0.8, baseline="sync", scenario="saturation"),
        Claim("saturation_accept_flat_redis", "At saturation, redis_queue's p99 acceptance latency is at most 0.8x "
              "sync's p99 request latency.", "p99_ms", "redis_queue", "<=", 0.8, baseline="sync",
              scenario="saturation"),
        Claim("sync_bounded", "At saturation, sync completes at most 40 jobs/s: its 8 request slots over 200 ms jobs.",
              "completed_per_s", "sync", "<=", 40, scenario="saturation",
              demonstration="holds by construction: HARNESS_LONG_RUNNING_SYNC_SLOTS bounds the jobs at work"),
        Claim("long_accept_pg", "With 2 s jobs arriving faster than sync's slots finish them (long_jobs), pg_queue's "
              "p99 acceptance latency is at most 0.3x sync's p99 request latency.", "p99_ms", "pg_queue", "<=", 0.3,
              baseline="sync", scenario="long_jobs"),
        Claim("long_accept_redis", "In long_jobs, redis_queue's p99 acceptance latency is at most 0.3x sync's p99 "
              "request latency.", "p99_ms", "redis_queue", "<=", 0.3, baseline="sync", scenario="long_jobs"),
        Claim("long_sync_sheds", "In long_jobs, at least 0.1 of sync's requests fail: with its slots full, a request "
              "waits past the slot timeout and is shed.", "failure_ratio", "sync", ">=", 0.1,
              scenario="long_jobs"),
        Claim("long_completion_pg", "In long_jobs, pg_queue's p99 completion, from submission to the client seeing "
              "the job done, is at most 4,000 ms: the 2 s of work plus at most 2 s of waiting.",
              "completion_p99_ms", "pg_queue", "<=", 4000, scenario="long_jobs"),
        Claim("long_completion_redis", "In long_jobs, redis_queue's p99 completion is at most 4,000 ms.",
              "completion_p99_ms", "redis_queue", "<=", 4000, scenario="long_jobs"),
        Claim("crash_redelivered_pg", "When a worker is SIGKILLed mid-job (worker_crash), pg_queue redelivers at "
              "least 1 of its jobs.", "redeliveries", "pg_queue", ">=", 1, scenario="worker_crash"),
        Claim("crash_redelivered_redis", "When a worker is SIGKILLed mid-job, redis_queue redelivers at least 1 of "
              "its jobs.", "redeliveries", "redis_queue", ">=", 1, scenario="worker_crash"),
        Claim("crash_redelivery_time_pg", "pg_queue redelivers a killed worker's job at most 4 s after the job's "
              "last heartbeat on average: the 2 s stalled timeout plus the sweep and heartbeat periods.",
              "redelivery_s", "pg_queue", "<=", 4, scenario="worker_crash"),
        Claim("crash_redelivery_time_redis", "redis_queue redelivers a killed worker's job at most 7 s after the "
              "job's last heartbeat on average: the 5 s in-progress key TTL plus a poll and a step.",
              "redelivery_s", "redis_queue", "<=", 7, scenario="worker_crash"),
        Claim("crash_unkeyed_doubles_pg", "Without the idempotency key, a redelivered job's effect happens again: "
              "in worker_crash, pg_queue has at least 1 job whose unkeyed effect happened twice.",
              "unkeyed_doubles", "pg_queue", ">=", 1, scenario="worker_crash"),
        Claim("crash_unkeyed_doubles_redis", "In worker_crash, redis_queue has at least 1 job whose unkeyed effect "
              "happened twice.", "unkeyed_doubles", "redis_queue", ">=", 1, scenario="worker_crash"),
        Claim("crash_no_loss_pg", "After a worker SIGKILL (worker_crash), pg_queue loses exactly 0 accepted jobs.",
              "lost_jobs", "pg_queue", "==", 0, scenario="worker_crash",
              demonstration="restates the invariant lost_jobs, enforced for every variant"),
        Claim("crash_no_loss_redis", "After a worker SIGKILL, redis_queue loses exactly 0 accepted jobs.",
              "lost_jobs", "redis_queue", "==", 0, scenario="worker_crash",
              demonstration="restates the invariant lost_jobs, enforced for every variant"),
        Claim("crash_effect_once_pg", "After a worker SIGKILL, pg_queue has exactly 0 jobs whose keyed effect did "
              "not happen once.", "effects_not_once", "pg_queue", "==", 0, scenario="worker_crash",
              demonstration="restates the invariant effects_not_once, enforced for every variant"),
        Claim("crash_effect_once_redis", "After a worker SIGKILL, redis_queue has exactly 0 jobs whose keyed effect "
              "did not happen once.", "effects_not_once", "redis_queue", "==", 0, scenario="worker_crash",
              demonstration="restates the invariant effects_not_once, enforced for every variant"),
        Claim("poison_dead_letters_pg", "In poison, pg_queue's dead-lettered jobs differ from its poisoned jobs in "
              "exactly 0 ids.", "dead_letters_mismatch", "pg_queue", "==", 0, scenario="poison",
              demonstration="restates the invariant dead_letters_mismatch, enforced for every variant"),
        Claim("poison_dead_letters_redis", "In poison, redis_queue's dead-lettered jobs differ from its poisoned "
              "jobs in exactly 0 ids.", "dead_letters_mismatch", "redis_queue", "==", 0, scenario="poison",
              demonstration="restates the invariant dead_letters_mismatch, enforced for every variant"),
        Claim("poison_retried_pg", "In poison, pg_queue retries a poisoned job at least 1.5 times before it "
              "dead-letters it (3 attempts: 2 retries).", "retries_per_dead_letter", "pg_queue", ">=", 1.5,
              scenario="poison"),
        Claim("poison_retried_redis", "In poison, redis_queue retries a poisoned job at least 1.5 times before "
              "it dead-letters it.", "retries_per_dead_letter", "redis_queue", ">=", 1.5, scenario="poison"),
        Claim("scale_pg", "With work waiting, pg_queue's completion rate with 2 workers (scale_workers_2) is at least "
              "1.5x its rate with 1 (scale_workers_1): the jobs wait on I/O, not on the CPU.", "completed_per_s",
              "pg_queue", ">=", 1.5, baseline="pg_queue", scenario="scale_workers_2",
              baseline_scenario="scale_workers_1"),
        Claim("scale_redis", "With work waiting, redis_queue's completion rate with 2 workers is at least 1.5x its "
              "rate with 1.", "completed_per_s", "redis_queue", ">=", 1.5, baseline="redis_queue",
              scenario="scale_workers_2", baseline_scenario="scale_workers_1"),
    ),
)
