"""The store's own cost counters (targets/store_cost.py) against the real PostgreSQL: a row per
transaction costs a commit and a WAL fsync each, a batch of rows one of each; the sampler's own queries
are not counted; PostgreSQL's CPU is read from its processes."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from harness.settings import get_settings
from targets.store_cost import StoreCost, process_cpu_seconds

pytestmark = pytest.mark.integration
ROWS = 100


@pytest.fixture()
def table(stack):
    name = f"cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (i int)")
        yield conn, name
        conn.execute(f"DROP TABLE {name}")


def flushed(conn) -> None:
    """A backend reports its statistics at most once a second; make it report now (PostgreSQL 15+)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")


def test_a_commit_per_row_against_one_per_batch(table):
    conn, name = table
    cost = StoreCost(get_settings().pg_dsn, "pytest", ["one"])
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as sampler:
        flushed(conn)
        before = cost.sample(sampler)
        for i in range(ROWS):
            conn.execute(f"INSERT INTO {name} VALUES (%s)", (i,))
        flushed(conn)
        middle = cost.sample(sampler)
        with conn.transaction():
            conn.cursor().executemany(f"INSERT INTO {name} VALUES (%s)", [(i,) for i in range(ROWS)])
        flushed(conn)
        after = cost.sample(sampler)
    single = {k: middle[k] - before[k] for k in middle}
    batch = {k: after[k] - middle[k] for k in after}
    # other clients of the shared database may commit meanwhile: a margin, far below a commit per row
    assert ROWS <= single["commits"] <= ROWS + 20, single  # the sampler's own 3-4 queries are not in it
    assert batch["commits"] <= 20, batch
    assert single["wal_syncs"] >= ROWS / 2 > batch["wal_syncs"], (single, batch)
    assert single["wal_bytes"] > 0 and batch["wal_bytes"] > 0
    assert after["cpu_seconds"] >= before["cpu_seconds"] > 0


def test_cpu_of_a_process_not_visible_is_none():
    assert process_cpu_seconds(2**22 + 12345) is None
