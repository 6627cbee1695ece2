"""Cache races made deterministic, without mocks: a second Scaling Reads app (served in this process,
against the session's PostgreSQL and Redis) runs with the test-only miss gate, which holds every
cache fill between its database read and its SET until the test says go. The test interleaves
real requests in that gap: cache-aside's invalidation race (a miss reads the old row, a write commits
and invalidates, the miss then caches the old row) and the stampede of concurrent misses."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
import redis
import requests
from served import serve, wait_for
from test_scaling_reads import counter

from harness.loadgen import invariants
from harness.settings import get_settings

pytestmark = pytest.mark.integration


class Gate:
    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client, self.name = client, name

    def reset(self) -> None:
        self.client.delete(f"{self.name}:loaded", f"{self.name}:go")

    def wait_loaded(self, count: int = 1) -> None:
        """Until `count` fills have read the database and are waiting before their SET."""
        for _ in range(count):
            assert self.client.blpop([f"{self.name}:loaded"], timeout=20), "no cache fill reached the gate"

    def release(self, count: int = 1) -> None:
        self.client.rpush(f"{self.name}:go", *["go"] * count)


@pytest.fixture(scope="module")
def gated(stack):
    from targets.common import TargetSettings
    from targets.scaling_reads.main import build
    from targets.scaling_reads.settings import Settings

    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    gate = Gate(client, f"pytest:miss_gate:{id(client)}")
    gate.reset()
    target = TargetSettings(pg_dsn=settings.pg_dsn, redis_url=settings.redis_url, admin_token=settings.admin_secret)
    with serve(build(target, Settings(miss_gate=gate.name))) as url:
        yield url, gate, client
    gate.reset()


def get_async(url: str, count: int = 1) -> tuple[list[threading.Thread], list[requests.Response]]:
    responses: list[requests.Response] = []

    def read() -> None:
        responses.append(requests.get(url, timeout=60))

    threads = [threading.Thread(target=read) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, responses


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.parametrize("variant,ends_stale", [("cache_aside", True), ("cache_aside_lease", False)])
def test_a_write_during_a_miss(gated, target_url, variant, ends_stale):
    """cache_aside caches the row its miss read before the write (stale until the TTL); the lease
    variant's write deletes the miss's lease, so that fill is dropped and the next read is fresh. The
    stale_reads invariant, reading the writer's own log by product and version, sees the concurrent
    race on cache_aside (a sequential probe after the load could not)."""
    url, gate, client = gated
    pid = 150 if variant == "cache_aside" else 151
    entry = f"scaling_reads:{variant}:product:{pid}"
    client.delete(entry, f"scaling_reads:{variant}:lease:{pid}")
    gate.reset()
    with psycopg.connect(get_settings().pg_dsn) as conn:
        old = conn.execute("SELECT price_cents FROM products WHERE id = %s", (pid,)).fetchone()[0]
    new = old + 1 if old < 100_000 else 100

    readers, responses = get_async(f"{url}/{variant}/products/{pid}")
    gate.wait_loaded()  # the miss has read the old row and has not cached it yet
    write = requests.put(f"{url}/{variant}/products/{pid}/price", json={"price_cents": new}, timeout=10)
    assert write.status_code == 200  # committed and invalidated, while the miss is in flight
    gate.release()
    join(readers)
    assert responses[0].status_code == 200 and responses[0].json()["price_cents"] == old

    cached = client.get(entry)
    after = requests.get(f"{target_url}/{variant}/products/{pid}", timeout=10).json()  # the session's target
    # the writer's own log, as the locustfile keeps it: its write's version against what it read after
    log = {invariants.own_read("writer", 1, pid, write.json()["version"], after["version"], 0.1)}
    seen = invariants.reads_after_own_writes(log)
    assert (seen.passed, seen.value) == (not ends_stale, int(ends_stale)), seen.detail
    if ends_stale:
        assert cached is not None and json.loads(cached)["price_cents"] == old, "the race did not show"
        assert after["price_cents"] == old  # every reader now sees the old price until the TTL
    else:
        assert cached is None, "a fill whose lease was invalidated must not be cached"
        assert after["price_cents"] == new


@pytest.mark.parametrize("variant", ["cache_aside", "cache_aside_singleflight"])
def test_concurrent_misses(gated, variant):
    """While one fill is held, cache_aside's other readers all miss and query PostgreSQL (a stampede);
    single-flight's readers wait for the one fill in flight, so PostgreSQL sees one query."""
    url, gate, client = gated
    readers = 8
    client.delete(f"scaling_reads:{variant}:product:1", f"scaling_reads:{variant}:lock:1")
    gate.reset()
    queries = counter(url, "harness_db_queries_total", variant=variant, kind="read")
    coalesced = counter(url, "harness_cache_lookups_total", variant=variant, result="coalesced")

    threads, responses = get_async(f"{url}/{variant}/products/1", readers)
    if variant == "cache_aside":
        gate.wait_loaded(readers)  # every reader missed and read the database
        gate.release(readers)
    else:
        gate.wait_loaded(1)
        wait_for(lambda: counter(url, "harness_cache_lookups_total", variant=variant, result="coalesced")
                 - coalesced == readers - 1, 30, "the other readers to join the fill in flight")
        gate.release(1)
    join(threads)
    assert [r.status_code for r in responses] == [200] * readers
    bodies = [r.json() for r in responses]
    assert all(body["id"] == 1 and body["price_cents"] == bodies[0]["price_cents"] for body in bodies)
    expected = readers if variant == "cache_aside" else 1
    assert counter(url, "harness_db_queries_total", variant=variant, kind="read") - queries == expected
