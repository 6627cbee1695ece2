"""Every Dealing with Contention invariant holds on a healthy event and fails on a deliberately broken one,
against the real PostgreSQL, Redis and target; and the checker catches the naive variant's own oversell.

The checks are the locustfile's functions, called with explicit inputs (event id, answered request ids).
"""

import uuid

import psycopg
import pytest
import redis
import requests
from test_contention_target import claim, new_event, race

from harness.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lf():
    """The locustfile's invariant checks (kept out of the locustfile, which binds Locust's event bus)."""
    from locustfiles import contention_checks

    return contention_checks


@pytest.fixture()
def conn(stack):
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture()
def base(target_urls) -> str:
    return target_urls["contention"]


def sold(base: str, variant: str, event: int, claims: int) -> set[str]:
    with requests.Session() as session:
        answers = [claim(session, base, variant, event, seat=1 + i % 2) for i in range(claims)]
    assert all(a["status"] == 200 for a in answers), answers
    return {a["request_id"] for a in answers}


def by_name(results) -> dict:
    return {r.name: r for r in results}


def test_a_healthy_event_keeps_every_invariant(lf, conn, base):
    event = new_event(base, "atomic", seats=2, capacity=10)
    results = by_name(lf.check_sales(conn, event, sold(base, "atomic", event, 8)))
    assert all(r.passed and r.value == 0 for r in results.values()), results


def test_a_seat_sold_twice_is_caught(lf, conn, base):
    event = new_event(base, "atomic", seats=2, capacity=10)
    answered = sold(base, "atomic", event, 4)
    conn.execute("INSERT INTO contention_sales (event_id, seat, unit, user_id, request_id, variant) "
                 "SELECT event_id, seat, unit, 'intruder', 'forged', variant FROM contention_sales "
                 "WHERE event_id = %s LIMIT 1", (event,))
    results = by_name(lf.check_sales(conn, event, answered | {"forged"}))
    assert not results["double_sold"].passed and results["double_sold"].value == 1
    assert not results["lost_updates"].passed  # the row's counter does not know the forged sale


def test_more_sales_than_capacity_is_caught(lf, conn, base):
    event = new_event(base, "atomic", seats=1, capacity=2)
    answered = sold(base, "atomic", event, 0) | {a["request_id"] for a in
                                                 [claim(requests.Session(), base, "atomic", event) for _ in range(2)]}
    conn.execute("UPDATE contention_seats SET capacity = 1 WHERE event_id = %s", (event,))
    result = by_name(lf.check_sales(conn, event, answered))["over_capacity"]
    assert not result.passed and result.value == 1 and "1 rows past capacity" in result.detail


def test_a_lost_update_of_the_counter_is_caught(lf, conn, base):
    event = new_event(base, "atomic", seats=2, capacity=10)
    answered = sold(base, "atomic", event, 4)
    conn.execute("UPDATE contention_seats SET sold = sold - 1 WHERE event_id = %s AND seat = 1", (event,))
    result = by_name(lf.check_sales(conn, event, answered))["lost_updates"]
    assert not result.passed and result.value == 1
    assert by_name(lf.check_sales(conn, event, answered))["over_capacity"].passed  # a lag is not an overrun


def test_an_answer_without_a_row_and_a_row_without_an_answer_are_caught(lf, conn, base):
    event = new_event(base, "atomic", seats=2, capacity=10)
    answered = sold(base, "atomic", event, 4)
    dropped = sorted(answered)[0]
    results = by_name(lf.check_sales(conn, event, (answered - {dropped}) | {"never-stored"}))
    assert not results["answers_without_one_row"].passed and results["answers_without_one_row"].value == 1
    assert not results["unanswered_rows"].passed and results["unanswered_rows"].value == 1
    assert dropped in results["unanswered_rows"].detail


def test_an_answer_with_two_rows_is_caught(lf, conn, base):
    event = new_event(base, "atomic", seats=2, capacity=10)
    answered = sold(base, "atomic", event, 2)
    conn.execute("INSERT INTO contention_sales (event_id, seat, unit, user_id, request_id, variant) "
                 "SELECT event_id, seat, unit + 100, user_id, request_id, variant FROM contention_sales "
                 "WHERE event_id = %s LIMIT 1", (event,))
    result = by_name(lf.check_sales(conn, event, answered))["answers_without_one_row"]
    assert not result.passed and result.value == 1


def test_the_checker_catches_the_naive_oversell(lf, conn, base):
    """Numbered seats (capacity 1), simultaneous naive claims: the checker sees what the race did."""
    for _ in range(10):
        event = new_event(base, "naive")
        answered = {a["request_id"] for a in race(base, "naive", event) if a["status"] == 200}
        if len(answered) > 1:
            break
    results = by_name(lf.check_sales(conn, event, answered))
    assert results["double_sold"].value == len(answered) - 1 >= 1
    assert not results["over_capacity"].passed
    assert results["answers_without_one_row"].passed and results["unanswered_rows"].passed


def test_a_seat_held_by_one_user_and_sold_to_another_is_caught(lf, conn, base):
    event = new_event(base, "redis_hold", seats=1, capacity=5)
    cache = redis.Redis.from_url(get_settings().redis_url, decode_responses=True)
    with cache, requests.Session() as session:
        held = claim(session, base, "redis_hold", event, user="holder")
        assert held["status"] == 200
        assert lf.check_holds(cache, conn, event).passed
        conn.execute("INSERT INTO contention_sales (event_id, seat, unit, user_id, request_id, variant) "
                     "VALUES (%s, 1, %s, 'someone-else', %s, 'redis_hold')", (event, held["unit"], uuid.uuid4().hex))
        result = lf.check_holds(cache, conn, event)
    assert not result.passed and result.value == 1 and "1 held by one user and sold to another" in result.detail


def test_a_sale_cut_off_by_the_stop_is_in_flight_not_a_violation(lf, conn, base):
    """A sale committed for a request the load side sent and never got an answer to (Locust stopped
    its user mid-request) is reported as in flight; one answered with an error stays a violation."""
    event = new_event(base, "atomic", seats=2, capacity=10)
    answered = sold(base, "atomic", event, 4)
    cut, errored = sorted(answered)[:2]
    results = by_name(lf.check_sales(conn, event, answered - {cut, errored}, cut_off={cut}))
    unanswered = results["unanswered_rows"]
    assert not unanswered.passed and unanswered.value == 1 and errored in unanswered.detail
    assert "1 sales of requests cut off" in unanswered.detail
    assert by_name(lf.check_sales(conn, event, answered - {cut}, cut_off={cut}))["unanswered_rows"].passed


def test_the_checks_read_one_snapshot(lf, conn, base):
    """The sales and the counters are read in one REPEATABLE READ transaction, and the connection is
    handed back as it came (autocommit)."""
    event = new_event(base, "atomic", seats=2, capacity=10)
    answered = sold(base, "atomic", event, 4)
    total = "SELECT sum(sold) FROM contention_seats WHERE event_id = %s"
    with lf.snapshot(conn):
        before = conn.execute("SELECT count(*) FROM contention_sales WHERE event_id = %s", (event,)).fetchone()[0]
        with psycopg.connect(get_settings().pg_dsn, autocommit=True) as other:  # commits during the snapshot
            other.execute("UPDATE contention_seats SET sold = sold + 1 WHERE event_id = %s", (event,))
        seen = conn.execute(total, (event,)).fetchone()[0]
    assert seen == before == 4  # the other connection's commit is invisible inside the snapshot
    assert conn.autocommit
    assert not by_name(lf.check_sales(conn, event, answered))["lost_updates"].passed  # and seen after it
