"""Scaling Reads against the real streaming replica, the real shared HTTP cache (nginx) and PostgreSQL of
the session's stack: read-your-writes while the replica's replay is held back (pg_wal_replay_pause on
the standby), the invariants that read the clients' log, the replica's rows and the kept aggregates,
each failing on a deliberately broken case, and the replica frozen mid-read without a 5xx."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import requests
from served import wait_for
from test_invariants import lf  # noqa: F401  (the locustfile, imported once)
from test_scaling_reads import admin, counter

from harness.loadgen import invariants
from harness.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture()
def primary(stack):
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture()
def paused_replica(stack):
    """The replica with its WAL replay paused (it still answers reads, from before the pause)."""
    with psycopg.connect(get_settings().pg_replica_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def version(url: str, cookies=None) -> int:
    response = requests.get(url, cookies=cookies, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["version"]


def set_price(session: requests.Session, url: str, price: int = 4321) -> requests.Response:
    response = session.put(f"{url}/price", json={"price_cents": price}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_read_your_writes_while_the_replica_lags(target_url, paused_replica):
    """With the replica's replay paused, `replica` shows its writer the old version and `replica_ryw` the
    new one (its cookie sends the read to the primary); the clients' log check tells them apart."""
    logs = {}
    for variant, pid in (("replica", 201), ("replica_ryw", 202)):
        url = f"{target_url}/{variant}/products/{pid}"
        with requests.Session() as session:
            written = set_price(session, url).json()["version"]
            seen = version(url, session.cookies)
        logs[variant] = invariants.reads_after_own_writes({invariants.own_read("c", 1, pid, written, seen, 0.01)})
        if variant == "replica_ryw":
            assert seen == written and "ryw_lsn" in session.cookies
    assert (logs["replica"].passed, logs["replica"].value) == (False, 1), logs["replica"].detail
    assert logs["replica_ryw"].passed, logs["replica_ryw"].detail


def test_ryw_reads_go_back_to_the_replica_once_it_replayed(target_url, stack):
    url = f"{target_url}/replica_ryw/products/203"
    with requests.Session() as session:
        written = set_price(session, url).json()["version"]
        on_replica = counter(target_url, "harness_replica_reads_total", variant="replica_ryw", server="replica")
        wait_for(lambda: version(url, session.cookies) == written and counter(
            target_url, "harness_replica_reads_total", variant="replica_ryw", server="replica") > on_replica,
            10, "a read with the cookie to be served by the replica once it has replayed the write")


def test_the_replicas_replay_cpu_is_counted(target_url, primary):
    def replay_cpu() -> float:
        return counter(target_url, "harness_replica_replay_cpu_seconds_total", variant="replica")

    before = replay_cpu()
    primary.execute("UPDATE products SET updated_at = updated_at WHERE id <= 20000")  # WAL for the replica to replay
    wait_for(lambda: replay_cpu() > before, 20, "the replica's replay process to use CPU")


def test_a_bad_ryw_cookie_is_a_422(target_url):
    response = requests.get(f"{target_url}/replica_ryw/products/1", cookies={"ryw_lsn": "x; DROP"}, timeout=10)
    assert response.status_code == 422 and "ryw_lsn" in response.json()["error"]


def test_replica_converged_sees_a_row_the_replica_lacks(lf, primary, paused_replica):  # noqa: F811
    healthy = lf.compare_replica(primary, paused_replica)
    assert healthy.passed, healthy.detail
    primary.execute("UPDATE products SET price_cents = price_cents + 1, version = version + 1 WHERE id = 204")
    broken = lf.compare_replica(primary, paused_replica)
    assert (broken.passed, broken.value) == (False, 1) and "204: price_cents" in broken.detail, broken.detail
    timed_out = lf.check_replica(primary, paused_replica, timeout_s=0.5)
    assert not timed_out.passed and "did not replay" in timed_out.detail


def test_denormalized_aggregates_see_a_review_that_skipped_them(lf, primary, target_url):  # noqa: F811
    rebuilt = requests.post(f"{target_url}/denormalized/aggregates/rebuild", headers=admin(), timeout=120)
    assert rebuilt.status_code == 200, rebuilt.text
    review = requests.post(f"{target_url}/denormalized/products/205/reviews", timeout=10,
                           json={"rating": 2, "body": "kept in the row", "tag": f"test-{uuid.uuid4().hex[:8]}"})
    assert review.status_code == 201
    page = requests.get(f"{target_url}/denormalized/products/205", timeout=10).json()
    fresh = requests.get(f"{target_url}/direct/products/205", timeout=10).json()
    assert {k: page[k] for k in ("review_count", "avg_rating", "rating_histogram")} == \
        {k: fresh[k] for k in ("review_count", "avg_rating", "rating_histogram")}
    assert lf.check_aggregates(primary).passed
    tag = f"test-{uuid.uuid4().hex[:8]}"
    primary.execute("INSERT INTO reviews (product_id, rating, body, tag) VALUES (206, 5, 'behind its back', %s)",
                    (tag,))
    try:
        broken = lf.check_aggregates(primary)
        assert (broken.passed, broken.value) == (False, 1) and "206: count" in broken.detail, broken.detail
    finally:
        primary.execute("DELETE FROM reviews WHERE tag = %s", (tag,))


def test_the_http_cache_serves_hits_and_revalidates(target_url, stack):
    edge = f"{get_settings().http_cache_url}/scaling_reads/http_cache/products/207"
    origin = f"{target_url}/http_cache/products/207"
    first = requests.get(edge, timeout=10)
    assert first.status_code == 200 and first.headers["Cache-Control"].startswith("public, max-age=")
    assert requests.get(edge, timeout=10).headers["X-Cache-Status"] == "HIT"
    etag = first.headers["ETag"]
    assert requests.get(origin, headers={"If-None-Match": etag}, timeout=10).status_code == 304
    with requests.Session() as session:
        written = set_price(session, edge).json()["version"]  # a PUT passes through to the origin
    assert requests.get(origin, headers={"If-None-Match": etag}, timeout=10).status_code == 200  # a new ETag
    assert version(edge) < written  # within max-age the edge still serves the page from before the write


def test_the_replica_frozen_falls_back_to_the_primary(target_url, stack):
    if not stack.owns("postgres_replica"):
        pytest.skip("faults need the replica that the harness started")
    on_primary = {v: counter(target_url, "harness_replica_reads_total", variant=v, server="primary")
                  for v in ("replica", "replica_ryw")}
    stack.fault_begin("postgres_replica", "stop")
    try:
        for _ in range(5):
            for variant in ("replica", "replica_ryw"):
                response = requests.get(f"{target_url}/{variant}/products/208", timeout=10)
                assert response.status_code == 200, response.text
    finally:
        stack.fault_end("postgres_replica", "stop")
    for variant, before in on_primary.items():
        assert counter(target_url, "harness_replica_reads_total", variant=variant, server="primary") >= before + 5
