"""Dealing with Contention's invariant checks, with explicit inputs: the locustfile registers them, and
tests call them directly (importing the locustfile would bind Locust's event bus a second time).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import redis

from harness.modules.contention import SPEC
from harness.spec import InvariantResult


@contextlib.contextmanager
def snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """One REPEATABLE READ transaction: every query of a check sees the same committed state (a sale
    committed between reading the sales and reading the counters would look like a lost update)."""
    autocommit, isolation = conn.autocommit, conn.isolation_level
    conn.autocommit, conn.isolation_level = False, psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction():
            yield
    finally:
        conn.autocommit, conn.isolation_level = autocommit, isolation


def check_sales(conn: psycopg.Connection, event_id: int, answered: set[str],
                cut_off: set[str] = frozenset()) -> list[InvariantResult]:
    """The event's sales against its rows and against the sale answers the load side received.
    `cut_off`: sale requests sent and never answered at all (the stop cut them off, or the connection
    broke): the client cannot know, so their sales are in flight at the stop, reported and not counted."""
    with snapshot(conn):
        sales = conn.execute("SELECT seat, unit, request_id FROM contention_sales WHERE event_id = %s",
                             (event_id,)).fetchall()
        seats = conn.execute("SELECT seat, capacity, sold FROM contention_seats WHERE event_id = %s",
                             (event_id,)).fetchall()
    per_unit, per_seat, per_request = Counter((s, u) for s, u, _ in sales), Counter(s for s, _, _ in sales), \
        Counter(r for _, _, r in sales)
    doubled = {k: n for k, n in per_unit.items() if n > 1}
    over = {s: per_seat[s] - cap for s, cap, _ in seats if per_seat[s] > cap}
    drift = {s: per_seat[s] - sold for s, _, sold in seats if per_seat[s] != sold}
    missing = {r for r in answered if per_request[r] == 0}
    repeated = {r for r in answered if per_request[r] > 1}
    in_flight = (set(per_request) - answered) & cut_off
    unanswered = set(per_request) - answered - in_flight
    full = sum(1 for s, cap, _ in seats if per_seat[s] >= cap)
    return [
        InvariantResult("double_sold", sum(doubled.values()) - len(doubled), "== 0", not doubled,
                        f"{len(sales)} sales; {len(doubled)} seat units sold more than once"
                        + (f", e.g. (seat, unit) {_some(doubled)}" if doubled else "")),
        InvariantResult("over_capacity", sum(over.values()), "== 0", not over,
                        f"{len(over)} rows past capacity ({sum(over.values())} extra sales); {full} of {len(seats)} "
                        "rows reached their capacity"),
        InvariantResult("lost_updates", sum(abs(d) for d in drift.values()), "== 0", not drift,
                        f"{len(drift)} rows whose sold counter differs from their sales (counter minus sales: "
                        f"{-sum(drift.values())})"),
        InvariantResult("answers_without_one_row", len(missing) + len(repeated), "== 0", not missing and not repeated,
                        f"{len(answered)} sale answers; {len(missing)} without a sale"
                        + (f" ({_some(missing)})" if missing else "") + f", {len(repeated)} with several"),
        InvariantResult("unanswered_rows", len(unanswered), "== 0", not unanswered,
                        f"{len(unanswered)} sales whose request was answered with an error or never sent"
                        + (f": {_some(unanswered)}" if unanswered else "")
                        + f"; {len(in_flight)} sales of requests cut off unanswered by the stop (in flight, "
                        "not counted)"),
    ]


def check_holds(cache: redis.Redis, conn: psycopg.Connection, event_id: int, now_ms: float | None = None):
    """redis_hold: every live hold in Redis against the sales of the same unit in PostgreSQL."""
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    with snapshot(conn):
        sold = {(s, u): user for s, u, user in conn.execute(
            "SELECT seat, unit, user_id FROM contention_sales WHERE event_id = %s", (event_id,)).fetchall()}
        seats = [s for (s,) in conn.execute("SELECT seat FROM contention_seats WHERE event_id = %s", (event_id,))]
    live, clashes = 0, []
    for seat in seats:
        prefix = f"{SPEC.id}:{event_id}:{seat}"
        holders = cache.hgetall(f"{prefix}:holder")
        for unit in cache.zrangebyscore(f"{prefix}:holds", now_ms, "+inf"):
            live += 1
            buyer = sold.get((seat, int(unit)))
            if buyer is not None and buyer != holders.get(unit):
                clashes.append((seat, int(unit)))
    return InvariantResult("held_and_sold", len(clashes), "== 0", not clashes,
                           f"{live} live holds; {len(clashes)} held by one user and sold to another"
                           + (f": {_some(clashes)}" if clashes else ""))


def _some(items) -> str:
    items = sorted(items, key=str)
    return ", ".join(map(str, items[:5])) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
