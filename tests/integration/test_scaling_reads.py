"""Each variant's behaviour against the real target, PostgreSQL and Redis."""

import http.client
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from served import wait_for

from harness.modules import get_module
from harness.settings import get_settings

pytestmark = pytest.mark.integration

CACHED = ("cache_aside", "cache_aside_singleflight", "cache_aside_lease")
VARIANTS = ("direct", *CACHED, "replica", "replica_ryw", "denormalized", "http_cache", "noop")


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


def admin() -> dict:
    return {"Authorization": f"Bearer {get_settings().admin_secret}"}


def test_healthz_reports_the_declared_resources(target_url):
    """Within a bounded wait: earlier tests freeze the replica and kill Redis, and an optional resource
    reports "degraded" until it answers again."""
    body = wait_for(lambda: (b := requests.get(f"{target_url}/healthz", timeout=5).json())["status"] == "ok" and b,
                    20, "the target to report every resource ok")
    assert body["variants"] == list(VARIANTS)
    assert body["resources"] == {"postgres": "ok", "postgres_replica": "ok", "redis": "ok"}


def test_seed_is_deterministic_and_skewed(stack):
    from targets.scaling_reads.store import review_counts

    settings = get_settings()
    spec_settings = get_module("scaling_reads").settings()
    expected = review_counts(spec_settings.products, spec_settings.reviews)
    with psycopg.connect(settings.pg_dsn) as conn:
        rows = dict(conn.execute("SELECT product_id, count(*) FROM reviews WHERE created_at = '2026-01-01 00:00:00+00' "
                                 "AND body LIKE 'Seed review %%' AND product_id IN (1, 2, 1000) GROUP BY 1").fetchall())
    assert rows == {1: expected[0], 2: expected[1], 1000: expected[999]}
    assert expected[0] > 50 * expected[999]


def test_direct_queries_the_database_every_time(target_url):
    before = db_reads(target_url, "direct")
    for _ in range(3):
        assert requests.get(f"{target_url}/direct/products/42", timeout=5).status_code == 200
    assert db_reads(target_url, "direct") - before == 3


@pytest.mark.parametrize("variant", CACHED)
def test_miss_then_hit(target_url, variant):
    requests.post(f"{target_url}/{variant}/cache/expire/77", headers=admin(), timeout=5).raise_for_status()
    hits = counter(target_url, "harness_cache_lookups_total", variant=variant, result="hit")
    reads = db_reads(target_url, variant)
    first = requests.get(f"{target_url}/{variant}/products/77", timeout=5)
    second = requests.get(f"{target_url}/{variant}/products/77", timeout=5)
    assert first.json() == second.json() and first.json()["id"] == 77 and first.json()["cached_at"] > 0
    assert db_reads(target_url, variant) - reads == 1
    assert counter(target_url, "harness_cache_lookups_total", variant=variant, result="hit") - hits == 1
    cached = redis.Redis.from_url(get_settings().redis_url).get(f"scaling_reads:{variant}:product:77")
    assert cached is not None and b'"id" : 77' in cached and cached == first.content


@pytest.mark.parametrize("variant", CACHED)
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


@pytest.mark.parametrize("method,path,body,status,message", [
    ("get", "/direct/products/abc", None, 422, "product_id: Input should be a valid integer"),
    ("get", "/cache_aside/products/0", None, 422, "greater than or equal to 1"),
    ("get", "/cache_aside/products/99999999", None, 404, "between 1 and"),
    ("put", "/direct/products/5/price", {"price_cents": -3}, 422, "price_cents"),
    ("put", "/direct/products/5/price", "not json", 422, "invalid request"),
    ("post", "/cache_aside/products/5/reviews", {"rating": 9, "body": "x"}, 422, "rating"),
    ("post", "/cache_aside/products/5/reviews", {"rating": 3}, 422, "body"),
    ("post", "/direct/cache/expire/5", None, 404, "Not Found"),  # direct has no cache, so no such route
    ("get", "/nosuchvariant/products/5", None, 404, "Not Found"),
])
def test_bad_input_is_a_clear_4xx(target_url, method, path, body, status, message):
    kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
    response = getattr(requests, method)(f"{target_url}{path}", timeout=5, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("field", ["body", "tag"])
def test_nul_in_a_review_is_a_4xx_with_a_message(target_url, variant, field):
    review = {"rating": 4, "body": "fine", "tag": "t", field: "before\x00after"}
    response = requests.post(f"{target_url}/{variant}/products/5/reviews", json=review, timeout=5)
    assert response.status_code == 422
    assert f"body.{field}" in response.json()["error"] and "NUL" in response.json()["error"]


def test_nul_in_the_path_is_a_4xx(target_url):
    response = requests.get(f"{target_url}/cache_aside/products/5%00", timeout=5)
    assert response.status_code == 422 and "product_id" in response.json()["error"]


def test_options_star_does_not_break_the_middleware(target_url):
    host = urlsplit(target_url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
    conn.putrequest("OPTIONS", "*", skip_host=False, skip_accept_encoding=True)
    conn.endheaders()
    assert conn.getresponse().status < 500
    conn.close()
    assert requests.get(f"{target_url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("path", ["/cache_aside/cache/flush", "/cache_aside/cache/expire/5"])
def test_admin_routes_need_the_token(target_url, path):
    assert requests.post(f"{target_url}{path}", timeout=5).status_code == 401
    wrong = requests.post(f"{target_url}{path}", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 403 and wrong.json()["error"] == "wrong admin token"
    assert requests.post(f"{target_url}{path}", headers=admin(), timeout=30).status_code in (200, 204)


def test_flush_removes_the_variants_entries_only(target_url):
    client = redis.Redis.from_url(get_settings().redis_url)
    for variant in ("cache_aside", "cache_aside_lease"):
        requests.get(f"{target_url}/{variant}/products/33", timeout=5).raise_for_status()
    flushed = requests.post(f"{target_url}/cache_aside/cache/flush", headers=admin(), timeout=30)
    assert flushed.status_code == 200 and flushed.json()["removed"] >= 1
    assert not client.exists("scaling_reads:cache_aside:product:33")
    assert client.exists("scaling_reads:cache_aside_lease:product:33")


def test_openapi_describes_every_variant(target_url):
    paths = requests.get(f"{target_url}/openapi.json", timeout=5).json()["paths"]
    for variant in VARIANTS:
        assert f"/{variant}/products/{{product_id}}" in paths
        assert "requestBody" in paths[f"/{variant}/products/{{product_id}}/reviews"]["post"]
    assert "/cache_aside_lease/cache/flush" in paths and "/direct/cache/flush" not in paths
