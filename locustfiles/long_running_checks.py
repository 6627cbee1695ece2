"""Long-running Tasks' invariant checks, with explicit inputs: the locustfile registers them, tests call them
on deliberately broken cases. No Locust import here (importing Locust patches the process for gevent).

Every check compares sets of job ids: the ids the load was told were accepted (a 2xx), the ones it
poisoned (fail_p 1), and what the ledger in PostgreSQL says of the phase's jobs (found by their tag).
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from harness.loadgen import invariants
from harness.spec import InvariantResult

OPEN = ("queued", "running")
NAMES = ("lost_jobs", "effects_not_once", "phantom_jobs", "dead_letters_mismatch", "unkeyed_doubles")


def unsettled(conn: psycopg.Connection, tag: str) -> int:
    """The phase's jobs some queue or worker still holds (0: settled)."""
    return conn.execute("SELECT count(*) FROM lr_jobs WHERE tag = %s AND status IN ('queued', 'running')",
                        (tag,)).fetchone()[0]


def ledger(conn: psycopg.Connection, tag: str) -> dict:
    """{id: (status, keyed effects, unkeyed effects)} of the phase's jobs."""
    rows = conn.execute(
        "SELECT j.id::text, j.status, (SELECT count(*) FROM lr_effects e WHERE e.job_id = j.id), "
        "(SELECT count(*) FROM lr_effects_unkeyed u WHERE u.job_id = j.id) FROM lr_jobs j WHERE j.tag = %s",
        (tag,)).fetchall()
    return {job_id: (status, keyed, unkeyed) for job_id, status, keyed, unkeyed in rows}


def _examples(ids) -> str:
    return invariants._examples(ids)


def check_jobs(jobs: Mapping[str, tuple[str, int, int]], accepted: set[str], poisoned: set[str]) -> list:
    """The invariants of one phase from its ledger rows and the load's id sets. No accepted job is a failure
    of every check: nothing was checked."""
    if not accepted:
        return [InvariantResult(name, 1, "== 0", False, "not checked: the load was told of no accepted job")
                for name in NAMES]
    status = {job_id: row[0] for job_id, row in jobs.items()}
    completed = {j for j, s in status.items() if s == "completed"}
    dead = {j for j, s in status.items() if s == "dead"}
    lost = accepted - completed - dead
    wrong_effect = {j for j in completed if jobs[j][1] != 1} | {j for j in dead if jobs[j][1] != 0}
    phantom = (completed | dead) - accepted
    poisoned_accepted = poisoned & accepted
    mismatch = (dead & accepted) ^ poisoned_accepted
    doubled = {j for j in completed if jobs[j][2] > 1}
    context = f"{len(accepted)} accepted, {len(completed)} completed, {len(dead)} dead-lettered"
    return [
        InvariantResult("lost_jobs", len(lost), "== 0", not lost,
                        (f"{len(lost)} accepted jobs neither completed nor dead-lettered: {_examples(lost)} "
                         f"(their status: {sorted({status.get(j, 'absent') for j in lost})}); " if lost else "")
                        + context),
        InvariantResult("effects_not_once", len(wrong_effect), "== 0", not wrong_effect,
                        (f"{len(wrong_effect)} jobs whose keyed effect did not happen exactly once (or happened for "
                         f"a dead-lettered job): {_examples(wrong_effect)}; " if wrong_effect else "") + context),
        InvariantResult("phantom_jobs", len(phantom), "== 0", not phantom,
                        (f"{len(phantom)} jobs ended that the load was never told were accepted: "
                         f"{_examples(phantom)}; " if phantom else "") + context),
        InvariantResult("dead_letters_mismatch", len(mismatch), "== 0", not mismatch,
                        (f"{len(mismatch)} jobs dead-lettered but not poisoned, or poisoned but not dead-lettered: "
                         f"{_examples(mismatch)}; " if mismatch else "")
                        + f"{len(poisoned_accepted)} poisoned and accepted, {len(dead & accepted)} dead-lettered"),
        InvariantResult("unkeyed_doubles", len(doubled), "== 0", not doubled,
                        (f"{len(doubled)} completed jobs whose unkeyed effect happened more than once "
                         f"({sum(jobs[j][2] for j in doubled) - len(doubled)} extra rows): {_examples(doubled)}; "
                         if doubled else "") + context),
    ]
