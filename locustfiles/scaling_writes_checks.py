"""Scaling Writes' invariant checks, with explicit inputs: the locustfile registers them, tests call them
on deliberately broken cases. No Locust import here (importing Locust patches the process for gevent).
"""

from __future__ import annotations

import time

import psycopg
import requests

from harness.loadgen import invariants
from harness.modules.scaling_writes import CONSUMER, SPEC
from harness.settings import get_settings, hostport
from harness.spec import InvariantResult

TABLE = "scaling_writes_events"


def check_events(conn: psycopg.Connection, tag: str, sent: set[str], acknowledged: set[str]) -> list:
    """The phase's rows in PostgreSQL, by id, against what the load sent and what the target acknowledged."""
    rows = conn.execute(f"SELECT id::text, count(*) FROM {TABLE} WHERE tag = %s GROUP BY id", (tag,)).fetchall()
    stored = dict(rows)
    lost, duplicate = invariants.writes_by_id(acknowledged, stored, "lost_events", "duplicate_events")
    phantom = stored.keys() - sent
    detail = (f"{len(phantom)} ids in the store were never sent: {sorted(phantom)[:5]}; " if phantom else "")
    return [lost, duplicate,
            InvariantResult("phantom_events", len(phantom), "== 0", not phantom,
                            detail + f"{len(sent)} sent, {sum(stored.values())} rows, {len(stored)} distinct ids")]


def consumer_url() -> str:
    settings = get_settings()
    process = next(p for p in SPEC.processes if p.name == CONSUMER)
    return f"http://{hostport(settings.target_host, settings.module_port(process.port))}"


def consumer_lag(session: requests.Session | None = None) -> tuple:
    """(lag, high watermarks) from the consumer's monitor; (None, None) when it does not answer."""
    try:
        sample = (session or requests).get(f"{consumer_url()}/lag", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None, None
    return sample.get("lag"), tuple(sorted((sample.get("highwater") or {}).items()))


def drained(probe=consumer_lag) -> bool:
    """Lag 0 on two samples a monitor period apart, with the same high watermarks: nothing in flight."""
    first = probe()
    time.sleep(0.6)
    return first[0] == 0 and probe() == first


def wait_drained(timeout_s: float) -> bool:
    """Block until the consumer has committed everything in the topic (tests; the run's settle is the same)."""
    return invariants.wait_until(drained, timeout_s)
