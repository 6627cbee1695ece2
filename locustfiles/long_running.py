"""Managing Long-running Tasks: clients submit jobs and wait for them to end.

Run it as plain Locust (web UI, or add --headless -u 40 -t 30s):

    locust -f locustfiles/long_running.py --variant pg_queue --work-ms 500

The variants, scenarios (--scenario) and claims are the module's spec (`harness/modules/long_running.py`).
Each task submits one job (`POST /<variant>/jobs`, timed as "POST /jobs": the acceptance). A sync job is
done when that answers. A queued job is then awaited with long polls (`GET /<variant>/jobs/<id>?wait_s=`,
the target answers as soon as the job ends), and its end is recorded as a request of its own, timed from
the submission (from the arrival's intended start in the open model): "job completed", or "job
dead-lettered" for a job the queue gave up on. A job that has not ended within --job-deadline-s is a
failure of "job completed"; a job still running when the test stops is not recorded (the invariants
still check it). A share of the jobs (--poison-share) always fail.

When the test stops, the phase's jobs are settled (no job queued or running, 60 s at most) and checked by
id against the ledger in PostgreSQL (long_running_checks.py).
"""

from __future__ import annotations

import random
import time

import psycopg
from locust import FastHttpUser, events, task
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from harness import loadgen
from harness.loadgen import ProfileShape  # noqa: F401  (Locust plays the shape it finds here)
from harness.modules.long_running import COMPLETED, DEAD, SPEC, STATUS, SUBMIT
from harness.settings import get_settings

try:  # Locust puts the locustfile's directory on sys.path; a checkout also has the package
    from long_running_checks import check_jobs, ledger, unsettled
except ImportError:
    from locustfiles.long_running_checks import check_jobs, ledger, unsettled

ACCEPTED, POISONED = "jobs_accepted", "jobs_poisoned"
SETTLE_TIMEOUT_S = 60
LONG_POLL_S = 1.0  # short enough that a stopping test does not wait on a poll (Locust's --stop-timeout)
plugin = loadgen.setup(SPEC)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("long_running")
    group.add_argument("--work-ms", type=int, default=500, env_var="LOCUST_WORK_MS", help="each job's work, ms")
    group.add_argument("--poison-share", type=float, default=0.0, env_var="LOCUST_POISON_SHARE",
                       help="share of jobs that always fail (fail_p 1): they end dead-lettered")
    group.add_argument("--fail-p", type=float, default=0.0, env_var="LOCUST_FAIL_P",
                       help="the other jobs' failure probability per attempt (retried)")
    group.add_argument("--job-deadline-s", type=float, default=30.0, env_var="LOCUST_JOB_DEADLINE_S",
                       help="a job not ended this long after its submission is a failure")


@events.init.add_listener
def _check_options(environment, **_) -> None:
    o = environment.parsed_options
    problems = [text for bad, text in (
        (not 0 <= o.work_ms <= 600_000, f"--work-ms must be between 0 and 600000, got {o.work_ms}"),
        (not 0 <= o.poison_share <= 1, f"--poison-share must be between 0 and 1, got {o.poison_share}"),
        (not 0 <= o.fail_p <= 1, f"--fail-p must be between 0 and 1, got {o.fail_p}"),
        (not 0 < o.job_deadline_s <= 3600, f"--job-deadline-s must be in (0, 3600], got {o.job_deadline_s}"),
    ) if bad]
    if problems:
        raise SystemExit("; ".join(problems))


def tag_of(options) -> str:
    """Every job of a phase carries it, so the phase's jobs are found in the ledger."""
    return f"{options.run_id}:{options.phase}"[-64:]


class Client(loadgen.Paced, FastHttpUser):
    """Closed model (default): a user submits its next job when the last one ended. Open model (--rate R):
    R jobs per second."""

    network_timeout = 30.0

    def on_start(self) -> None:
        self.options = o = self.environment.parsed_options
        self.base, self.tag, self.plugin = f"/{o.variant}/jobs", tag_of(o), self.environment.harness
        super().on_start()

    @task
    def job(self) -> None:
        o, started = self.options, time.perf_counter()
        poisoned = random.random() < o.poison_share
        body = {"work_ms": o.work_ms, "fail_p": 1.0 if poisoned else o.fail_p, "tag": self.tag}
        with self.client.post(self.base, json=body, name=SUBMIT, catch_response=True) as response:
            if response.status_code not in (200, 202):
                response.failure(f"{response.status_code}: {(response.text or '')[:120]}")
                return
            answer = response.json()
            job_id = answer["id"]
        self.plugin.add_id(ACCEPTED, job_id)
        if poisoned:
            self.plugin.add_id(POISONED, job_id)
        status = answer["status"] if o.variant == "sync" else self.wait(job_id, started)
        if status != "stopping":
            self.record(status, started)

    def wait(self, job_id: str, started: float) -> str:
        deadline = started + self.options.job_deadline_s
        for _ in range(10_000):  # bounded in count; in time by the deadline
            if self.environment.runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
                return "stopping"  # the test ends: the job is left to the settle and the invariants
            left = deadline - time.perf_counter()
            if left <= 0:
                return "timed out"
            response = self.client.get(f"{self.base}/{job_id}?wait_s={min(LONG_POLL_S, left):.2f}", name=STATUS)
            if response.status_code == 200 and response.json()["status"] in ("completed", "dead"):
                return response.json()["status"]
        return "timed out"

    def record(self, status: str, started: float) -> None:
        failure = None if status in ("completed", "dead") else RuntimeError(f"job {status}")
        self.environment.events.request.fire(
            request_type="JOB", name=DEAD if status == "dead" else COMPLETED,
            response_time=(time.perf_counter() - started) * 1000, response_length=0, exception=failure,
            context=self.context())


# --- invariants: the checks are in long_running_checks.py (no Locust there; tests import them) ---------
def _connect():
    return psycopg.connect(get_settings().pg_dsn, connect_timeout=5, autocommit=True)


def _settled(environment) -> bool:
    with _connect() as conn:
        return unsettled(conn, tag_of(environment.parsed_options)) == 0


@plugin.invariant("lost_jobs", "effects_not_once", "phantom_jobs", "dead_letters_mismatch", "unkeyed_doubles",
                  settle=_settled, settle_timeout_s=SETTLE_TIMEOUT_S)
def _jobs_kept(environment) -> list:
    harness = environment.harness
    with _connect() as conn:
        return check_jobs(ledger(conn, tag_of(environment.parsed_options)), harness.ids(ACCEPTED),
                          harness.ids(POISONED))
