"""Long-running Tasks against the real stack: a worker SIGKILLed mid-job (by the stack, as a fault does)
has its job redelivered and completed with its keyed effect once, while the unkeyed effect doubles;
bad input is a 4xx; the invariants catch a dropped job and a doubled effect in the real ledger."""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid

import psycopg
import pytest
import requests

from harness.modules import get_module, locustfile
from harness.settings import get_settings
from targets.long_running.settings import Settings

pytestmark = pytest.mark.integration
SPEC = get_module("long_running")
SETTINGS = Settings()
WORKERS = {"pg_queue": "long_running_pg_worker_", "redis_queue": "long_running_redis_worker_"}


def checks():
    """locustfiles/long_running_checks.py (no Locust import in it)."""
    name = "long_running_checks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, locustfile(SPEC).parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture()
def base(target_urls) -> str:
    return target_urls["long_running"]


@pytest.fixture()
def conn(target_urls):
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as connection:
        yield connection


def submit(base: str, variant: str, **body) -> str:
    response = requests.post(f"{base}/{variant}/jobs", json={"tag": "test", **body}, timeout=30)
    assert response.status_code in (200, 202), response.text
    return response.json()["id"]


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout_s} s")


@pytest.mark.parametrize("variant", ["pg_queue", "redis_queue"])
def test_a_killed_workers_job_is_redelivered_and_its_keyed_effect_happens_once(stack, base, conn, variant):
    job_id = submit(base, variant, work_ms=3000)  # within redis_queue's job timeout (4 s, less 1 s)

    def running_past_its_effect():  # progress 25 % is written after the effect (store.Runner.run)
        row = conn.execute("SELECT a.worker FROM lr_attempts a JOIN lr_jobs j ON j.id = a.job_id WHERE a.job_id = %s "
                           "AND a.ended_at IS NULL AND j.progress >= 25", (job_id,)).fetchone()
        return row and row[0]

    worker = wait_for(running_past_its_effect, 20, f"{variant} job running past its effect")
    name = WORKERS[variant] + worker.split("-")[1]  # "<variant>-<index>-<pid>"
    stack.fault_begin(name, "kill")
    killed = time.time()
    try:
        time.sleep(0.5)
    finally:
        stack.fault_end(name, "kill")  # the killed worker comes back, as after a fault
    state = requests.get(f"{base}/{variant}/jobs/{job_id}?wait_s=25", timeout=30).json()
    assert state["status"] == "completed", state
    assert state["attempts"] >= 2, state
    keyed = conn.execute("SELECT count(*) FROM lr_effects WHERE job_id = %s", (job_id,)).fetchone()[0]
    unkeyed = conn.execute("SELECT count(*) FROM lr_effects_unkeyed WHERE job_id = %s", (job_id,)).fetchone()[0]
    assert keyed == 1, "the keyed effect happened more or less than once"
    assert unkeyed >= 2, "without the key, the redelivered job did its effect again"
    abandoned, redelivered_after = conn.execute(
        "SELECT count(*) FILTER (WHERE outcome = 'abandoned'), max(redelivery_s) FROM lr_attempts WHERE job_id = %s",
        (job_id,)).fetchone()
    assert abandoned == 1 and redelivered_after is not None
    bound = SETTINGS.pg_stalled_s if variant == "pg_queue" else SETTINGS.redis_redeliver_s
    assert redelivered_after <= bound + 3, redelivered_after  # the timeout, a sweep or poll, a heartbeat step
    assert time.time() - killed >= min(bound, 1.5)  # it did wait for the timeout


def test_bad_input_is_a_4xx(base):
    cases = [
        ("post", "/pg_queue/jobs", {"work_ms": -1}, 422),
        ("post", "/redis_queue/jobs", {"work_ms": SETTINGS.max_work_ms + 1}, 422),
        ("post", "/redis_queue/jobs", {"work_ms": int(SETTINGS.redis_job_timeout_s * 1000)}, 422),
        ("post", "/sync/jobs", {"work_ms": 10, "delay_s": 1}, 422),
        ("post", "/pg_queue/jobs", {"work_ms": 10, "fail_p": 2}, 422),
        ("post", "/pg_queue/jobs", {"work_ms": 10, "tag": "x" * 5000}, 413),
        ("post", "/redis_queue/jobs", {"work_ms": 10, "tag": "bad\u0000"}, 422),
        ("get", f"/pg_queue/jobs/{uuid.uuid4()}", None, 404),
        ("get", f"/redis_queue/jobs/{uuid.uuid4()}", None, 404),
        ("get", "/sync/jobs/not-a-uuid", None, 422),
        ("get", f"/pg_queue/jobs/{uuid.uuid4()}?wait_s=-1", None, 422),
    ]
    for method, path, body, status in cases:
        response = requests.request(method, f"{base}{path}", json=body, timeout=10)
        assert response.status_code == status, (path, body, response.status_code, response.text)
        assert response.json()["error"], path


def test_a_job_of_one_queue_is_unknown_to_the_other(base):
    job_id = submit(base, "pg_queue", work_ms=10)
    assert requests.get(f"{base}/redis_queue/jobs/{job_id}", timeout=10).status_code == 404


def test_the_invariants_catch_a_dropped_job_and_a_doubled_effect_in_the_ledger(base, conn):
    tag = f"test:{uuid.uuid4().hex[:12]}"
    done = [submit(base, "pg_queue", work_ms=10, tag=tag) for _ in range(3)]
    poisoned = submit(base, "redis_queue", work_ms=10, fail_p=1, tag=tag)
    wait_for(lambda: checks().unsettled(conn, tag) == 0, 20, "settled jobs")
    accepted = {*done, poisoned}
    results = {r.name: r for r in checks().check_jobs(checks().ledger(conn, tag), accepted, {poisoned})}
    assert all(r.passed for r in results.values()), results
    # a job the queue dropped: accepted, and still queued in the ledger after the settle
    conn.execute("UPDATE lr_jobs SET status = 'queued' WHERE id = %s", (done[0],))
    # a job whose effect was done twice: the keyed row gone (so "not once"), two unkeyed rows
    conn.execute("DELETE FROM lr_effects WHERE job_id = %s", (done[1],))
    conn.execute("INSERT INTO lr_effects_unkeyed (job_id) VALUES (%s)", (done[1],))
    results = {r.name: r for r in checks().check_jobs(checks().ledger(conn, tag), accepted, {poisoned})}
    assert results["lost_jobs"].value == 1 and done[0] in results["lost_jobs"].detail
    assert results["effects_not_once"].value == 1 and done[1] in results["effects_not_once"].detail
    assert results["unkeyed_doubles"].value == 1
    conn.execute("UPDATE lr_jobs SET status = 'dead' WHERE id = %s", (done[2],))  # dead-lettered, not poisoned
    results = {r.name: r for r in checks().check_jobs(checks().ledger(conn, tag), accepted - {done[2]}, {poisoned})}
    assert results["dead_letters_mismatch"].value == 0  # not accepted: not counted there ...
    assert results["phantom_jobs"].value == 1  # ... but it ended without the load knowing it was accepted
