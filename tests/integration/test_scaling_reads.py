"""Each variant's behaviour against the real target, PostgreSQL and Redis."""

import threading

import psycopg
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.settings import get_settings

pytestmark = pytest.mark.integration


def counter(url, name, **labels) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def db_reads(url, variant):
    return counter(url, "harness_db_queries_total", variant=variant, kind="read")


def test_healthz(target_url):
    body = requests.get(f"{target_url}/healthz", timeout=5).json()
    assert body["status"] == "ok" and "cache_aside" in body["variants"]


def test_seed_is_deterministic_and_skewed(stack):
    from targets.scaling_reads import review_counts

    settings = get_settings()
    expected = review_counts(settings.products, settings.reviews)
    with psycopg.connect(settings.pg_dsn) as conn:
        rows = dict(conn.execute("SELECT product_id, count(*) FROM reviews WHERE tag IS NULL "
                                 "AND product_id IN (1, 2, 1000) GROUP BY 1").fetchall())
    assert rows == {1: expected[0], 2: expected[1], 1000: expected[999]}
    assert expected[0] > 50 * expected[999]


def test_direct_queries_the_database_every_time(target_url):
    before = db_reads(target_url, "direct")
    for _ in range(3):
        assert requests.get(f"{target_url}/direct/products/42", timeout=5).status_code == 200
    assert db_reads(target_url, "direct") - before == 3


@pytest.mark.parametrize("variant", ["cache_aside", "cache_aside_singleflight"])
def test_miss_then_hit(target_url, variant):
    requests.post(f"{target_url}/{variant}/cache/expire/77", timeout=5).raise_for_status()
    hits = counter(target_url, "harness_cache_lookups_total", variant=variant, result="hit")
    reads = db_reads(target_url, variant)
    first = requests.get(f"{target_url}/{variant}/products/77", timeout=5)
    second = requests.get(f"{target_url}/{variant}/products/77", timeout=5)
    assert first.json() == second.json() and first.json()["id"] == 77
    assert db_reads(target_url, variant) - reads == 1
    assert counter(target_url, "harness_cache_lookups_total", variant=variant, result="hit") - hits == 1
    cached = redis.Redis.from_url(get_settings().redis_url).get(f"scaling_reads:{variant}:product:77")
    assert cached is not None and b'"id" : 77' in cached


@pytest.mark.parametrize("variant", ["cache_aside", "cache_aside_singleflight"])
def test_write_invalidates(target_url, variant):
    url = f"{target_url}/{variant}/products/91"
    old = requests.get(url, timeout=5).json()["price_cents"]
    new = old + 1 if old < 100_000 else 100
    assert requests.put(f"{url}/price", json={"price_cents": new}, timeout=5).status_code == 200
    assert redis.Redis.from_url(get_settings().redis_url).get(f"scaling_reads:{variant}:product:91") is None
    assert requests.get(url, timeout=5).json()["price_cents"] == new
    count = requests.get(url, timeout=5).json()["review_count"]
    review = {"rating": 5, "body": "integration test", "tag": "pytest"}
    assert requests.post(f"{url}/reviews", json=review, timeout=5).status_code == 201
    assert requests.get(url, timeout=5).json()["review_count"] == count + 1


def concurrent_misses(target_url, variant, readers=24) -> float:
    """Expire the hottest (most expensive) product, then let `readers` threads miss it at once."""
    requests.post(f"{target_url}/{variant}/cache/expire/1", timeout=5).raise_for_status()
    barrier = threading.Barrier(readers)
    statuses = []

    def read():
        with requests.Session() as session:
            barrier.wait(timeout=10)
            statuses.append(session.get(f"{target_url}/{variant}/products/1", timeout=30).status_code)

    before = db_reads(target_url, variant)
    threads = [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * readers
    return db_reads(target_url, variant) - before


def test_singleflight_collapses_concurrent_misses(target_url):
    assert concurrent_misses(target_url, "cache_aside_singleflight") == 1
    # Plain cache-aside lets the stampede through: more than one recompute for the same expiry.
    assert concurrent_misses(target_url, "cache_aside") > 1


@pytest.mark.parametrize("method,path,body,status,message", [
    ("get", "/direct/products/abc", None, 400, "product_id must be an integer"),
    ("get", "/cache_aside/products/0", None, 404, "between 1 and"),
    ("get", "/cache_aside/products/99999999", None, 404, "between 1 and"),
    ("put", "/direct/products/5/price", {"price_cents": -3}, 422, "price_cents"),
    ("put", "/direct/products/5/price", "not json", 422, "invalid body"),
    ("post", "/cache_aside/products/5/reviews", {"rating": 9, "body": "x"}, 422, "rating"),
    ("post", "/cache_aside/products/5/reviews", {"rating": 3}, 422, "body"),
    ("post", "/direct/cache/expire/5", None, 404, "has no cache"),
    ("get", "/nosuchvariant/products/5", None, 404, "Not Found"),
])
def test_bad_input_is_a_clear_4xx(target_url, method, path, body, status, message):
    kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
    response = getattr(requests, method)(f"{target_url}{path}", timeout=5, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]
