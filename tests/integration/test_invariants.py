"""Every Scaling Reads invariant fails on a deliberately broken case and holds on the healthy one,
against the real PostgreSQL, Redis and target of the embedded stack.

The checks are the locustfile's own functions, called with explicit inputs (ids, variant,
connections); the locustfile is imported once without gevent's monkey patching.
"""

import importlib.util
import json
import os
import sys
import uuid

import psycopg
import pytest
import redis
import requests

from harness.loadgen import invariants
from harness.modules import get_module, locustfile
from harness.settings import get_settings

pytestmark = pytest.mark.integration
VARIANT = "cache_aside"
WRITE_PRODUCT = 99  # the write checks add reviews here; the entry checks use products 1..20


@pytest.fixture(scope="module")
def lf():
    """The locustfile, imported once per process (its setup() binds Locust's event bus)."""
    os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
    name = "locustfiles.scaling_reads"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:  # locustfiles/ not importable as a package here: load the file
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, locustfile(get_module("scaling_reads")))
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return sys.modules[name]


@pytest.fixture()
def conn(stack):
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture()
def cache(stack):
    client = redis.Redis.from_url(get_settings().redis_url, decode_responses=True)
    yield client
    client.close()


def _forget_entries(cache: redis.Redis) -> None:
    keys = list(cache.scan_iter(match=f"scaling_reads:{VARIANT}:product:*"))
    if keys:
        cache.delete(*keys)


def _add_review(conn, product: int, tag: str | None) -> None:
    conn.execute("INSERT INTO reviews (product_id, rating, body, tag) VALUES (%s, 5, 'invariant test', %s)",
                 (product, tag))


def test_writes_by_id_see_a_dropped_and_a_doubled_review(conn, lf):
    prefix = f"test-{uuid.uuid4().hex[:8]}:0:"
    tags = [f"{prefix}{uuid.uuid4().hex}" for _ in range(6)]
    try:
        for tag in tags:
            _add_review(conn, WRITE_PRODUCT, tag)
        lost, duplicate = lf.check_writes(conn, prefix, set(tags))
        assert lost.passed and duplicate.passed and (lost.value, duplicate.value) == (0, 0), lost.detail
        conn.execute("DELETE FROM reviews WHERE tag = %s", (tags[0],))  # an acknowledged review vanished
        _add_review(conn, WRITE_PRODUCT, tags[1])  # another was stored twice (a retried POST)
        _add_review(conn, WRITE_PRODUCT, f"{prefix}never-acknowledged")  # answered with an error, yet stored
        lost, duplicate = lf.check_writes(conn, prefix, set(tags))
        assert (lost.passed, lost.value) == (False, 1) and tags[0] in lost.detail, lost.detail
        assert (duplicate.passed, duplicate.value) == (False, 1) and tags[1] in duplicate.detail, duplicate.detail
        assert "1 stored but never acknowledged" in lost.detail
    finally:
        conn.execute("DELETE FROM reviews WHERE starts_with(tag, %s)", (prefix,))


def test_stale_entries_sees_a_wrong_price_and_a_missed_invalidation(conn, cache, lf, target_url):
    _forget_entries(cache)
    products = range(1, 21)
    with requests.Session() as session:
        for product in products:  # the target caches each product the way it does under load
            session.get(f"{target_url}/{VARIANT}/products/{product}", timeout=10).raise_for_status()
    healthy = lf.check_stale_entries(cache, conn, VARIANT)
    assert healthy.passed and healthy.value == 0 and "0 of 20 entries" in healthy.detail, healthy.detail
    key = f"scaling_reads:{VARIANT}:product:5"
    entry = json.loads(cache.get(key))
    cache.set(key, json.dumps({**entry, "price_cents": entry["price_cents"] + 1}), keepttl=True)
    tag = f"test-{uuid.uuid4().hex[:8]}"
    try:
        _add_review(conn, 7, tag)  # a write that skipped the invalidation: the entry keeps the old count
        broken = lf.check_stale_entries(cache, conn, VARIANT)
        assert (broken.passed, broken.value) == (False, 2), broken.detail
        assert "5: price_cents" in broken.detail and "7: review_count" in broken.detail, broken.detail
    finally:
        conn.execute("DELETE FROM reviews WHERE tag = %s", (tag,))
        _forget_entries(cache)


def test_settle_waits_while_writes_land_or_the_target_answers(conn, cache, lf, target_url):
    def probe():
        return lf.store_fingerprint(conn, target_url)

    def price_change(_seconds: float) -> None:
        conn.execute("UPDATE products SET updated_at = now() WHERE id = 1")

    def a_request_lands(_seconds: float) -> None:
        requests.get(f"{target_url}/{VARIANT}/products/1", timeout=10).raise_for_status()

    def another_module_writes_redis(_seconds: float) -> None:  # a publisher, say: not this module's write
        cache.set("another_module:settle-test", "1", ex=5)

    assert not invariants.Quiescence(probe, sleep=price_change)()
    assert not invariants.Quiescence(probe, sleep=a_request_lands)()
    assert invariants.wait_until(invariants.Quiescence(probe, sleep=another_module_writes_redis), timeout_s=10)
    assert invariants.wait_until(invariants.Quiescence(probe, interval_s=0.2), timeout_s=10)
