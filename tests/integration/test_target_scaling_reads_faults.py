"""Degrade, don't fail: the session's Redis is killed or frozen (the stack's own fault primitives) while
the cached variants keep answering from PostgreSQL; they recover without a restart of the target, and
a write whose invalidation cannot reach Redis is answered and leaves no stale entry behind."""

from __future__ import annotations

import json
import threading

import pytest
import redis
import requests
from served import wait_for
from test_scaling_reads import CACHED, counter

from harness.settings import get_settings
from harness.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def owned_redis(stack):
    if not stack.owns("redis") or not stack.owns("scaling_reads"):
        pytest.skip("faults need the Redis and the target that the harness started")
    return stack


def errors(url: str, variant: str, op: str) -> float:
    return counter(url, "harness_cache_errors_total", variant=variant, op=op)


def read(url: str, variant: str, pid: int) -> dict:
    response = requests.get(f"{url}/{variant}/products/{pid}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def hit_counted(url: str, variant: str, pid: int) -> bool:
    hits = counter(url, "harness_cache_lookups_total", variant=variant, result="hit")
    read(url, variant, pid)
    read(url, variant, pid)
    return counter(url, "harness_cache_lookups_total", variant=variant, result="hit") > hits


def test_redis_killed_cached_variants_answer_from_postgres_and_recover(owned_redis, target_url):
    target_pid = Stack(get_settings()).state["scaling_reads"]["pid"]
    for variant in CACHED:
        read(target_url, variant, 11)
    before = {variant: errors(target_url, variant, "get") for variant in CACHED}
    owned_redis.fault_begin("redis", "kill")
    try:
        for variant in CACHED:
            assert [read(target_url, variant, pid)["id"] for pid in range(11, 21)] == list(range(11, 21))
            assert errors(target_url, variant, "get") > before[variant]
        price = requests.put(f"{target_url}/cache_aside/products/12/price", json={"price_cents": 4321}, timeout=10)
        assert price.status_code == 200  # committed; the invalidation that failed is not the client's problem
        health = requests.get(f"{target_url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
    finally:
        owned_redis.fault_end("redis", "kill")
    for variant in CACHED:  # the breaker lets a probe through within a second; hits resume by themselves
        wait_for(lambda v=variant: hit_counted(target_url, v, 11), 20, f"{variant} to hit the cache again")
    assert read(target_url, "cache_aside", 12)["price_cents"] == 4321
    assert Stack(get_settings()).state["scaling_reads"]["pid"] == target_pid  # no restart


def test_write_whose_invalidation_fails_is_answered_and_leaves_no_stale_entry(owned_redis, target_url):
    """Redis frozen (SIGSTOP) keeps its entries: after a price change it cannot invalidate, the old
    entry is still in Redis when it resumes. Reads bypass it meanwhile, and the deferred invalidation
    removes it once Redis answers."""
    client = redis.Redis.from_url(get_settings().redis_url, socket_timeout=10)
    variant, pid = "cache_aside", 13
    entry = f"scaling_reads:{variant}:product:{pid}"
    old = read(target_url, variant, pid)["price_cents"]
    assert json.loads(client.get(entry))["price_cents"] == old
    new = old + 1 if old < 100_000 else 100
    deletes = errors(target_url, variant, "delete")
    owned_redis.fault_begin("redis", "stop")
    try:
        readers = [threading.Thread(target=read, args=(target_url, variant, p)) for p in (14, 15, 16)]
        for thread in readers:  # three reads that time out together open the breaker
            thread.start()
        for thread in readers:
            thread.join(timeout=30)
        answer = requests.put(f"{target_url}/{variant}/products/{pid}/price", json={"price_cents": new}, timeout=10)
        assert answer.status_code == 200 and answer.json()["price_cents"] == new
        assert read(target_url, variant, pid)["price_cents"] == new
        assert errors(target_url, variant, "delete") > deletes
    finally:
        owned_redis.fault_end("redis", "stop")
    assert read(target_url, variant, pid)["price_cents"] == new  # never the entry Redis still holds

    def stale_entry_gone() -> bool:
        cached = client.get(entry)
        return cached is None or json.loads(cached)["price_cents"] == new

    wait_for(stale_entry_gone, 10, "the deferred invalidation to remove the stale entry")
    wait_for(lambda: hit_counted(target_url, variant, pid), 20, "the cache to serve the key again")
    assert read(target_url, variant, pid)["price_cents"] == new
