"""Scaling Writes against the real stack: the micro-batcher flushes by size and by time, a failed flush
fails exactly its requests, the consumer is idempotent on redelivery (direct and through the broker),
the invariants catch a dropped, a duplicated and a phantom event, and every variant acknowledges only
what is durable (bad input 4xx, never 5xx)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import uuid

import psycopg
import pytest
import requests

from harness.modules import get_module, locustfile
from harness.settings import get_settings
from targets.resources import Postgres
from targets.scaling_writes.store import TABLE, MicroBatcher, copy_idempotent, copy_rows, create_schema

pytestmark = pytest.mark.integration
SPEC = get_module("scaling_writes")


def checks():
    """locustfiles/scaling_writes_checks.py (no Locust import in it)."""
    name = "scaling_writes_checks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, locustfile(SPEC).parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def row(tag: str, code: str = "abc1234") -> tuple:
    return (uuid.uuid4(), tag, code, "https://example.com/a", None, "test-agent", time.time())


def stored(conn, tag: str) -> dict[str, int]:
    return dict(conn.execute(f"SELECT id::text, count(*) FROM {TABLE} WHERE tag = %s GROUP BY id", (tag,)).fetchall())


@pytest.fixture()
def conn(target_urls):
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture()
def tag() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


async def with_pool(work):
    pg = Postgres(get_settings().pg_dsn, size=4)
    await pg.open()
    try:
        await create_schema(pg)
        return await work(pg)
    finally:
        await pg.close()


def recording(pg, batches: list):
    async def write(rows):
        batches.append(len(rows))
        await copy_rows(pg, rows)
    return write


def test_batcher_flushes_at_n_rows_without_waiting_for_t(conn, tag):
    batches: list[int] = []

    async def work(pg):
        batcher = MicroBatcher(recording(pg, batches), max_rows=5, max_ms=60_000)
        # T is a minute: only the size trigger can answer within the bounded wait
        await asyncio.wait_for(asyncio.gather(*(batcher.submit(row(tag)) for _ in range(10))), 20)

    asyncio.run(with_pool(work))
    assert batches == [5, 5]
    assert sum(stored(conn, tag).values()) == 10


def test_batcher_flushes_after_t_ms_below_n_rows(conn, tag):
    batches: list[int] = []

    async def work(pg):
        batcher = MicroBatcher(recording(pg, batches), max_rows=1000, max_ms=50)
        await asyncio.wait_for(asyncio.gather(*(batcher.submit(row(tag)) for _ in range(3))), 20)

    asyncio.run(with_pool(work))
    assert batches == [3]
    assert sum(stored(conn, tag).values()) == 3


def test_a_failed_flush_fails_exactly_its_requests(conn, tag):
    """A row PostgreSQL rejects (short_code over its CHECK) fails its whole batch, and only that batch."""
    async def work(pg):
        batcher = MicroBatcher(lambda rows: copy_rows(pg, rows), max_rows=3, max_ms=60_000)
        bad_batch = [row(tag), row(tag, code="x" * 40), row(tag)]
        good_batch = [row(tag) for _ in range(3)]
        outcomes = await asyncio.wait_for(asyncio.gather(*(batcher.submit(r) for r in bad_batch + good_batch),
                                                         return_exceptions=True), 20)
        return bad_batch, good_batch, outcomes

    bad, good, outcomes = asyncio.run(with_pool(work))
    assert all(isinstance(o, psycopg.errors.CheckViolation) for o in outcomes[:3]), outcomes
    assert outcomes[3:] == [None, None, None]
    assert set(stored(conn, tag)) == {str(r[0]) for r in good}


def test_the_same_batch_written_twice_leaves_one_row_per_id(conn, tag):
    rows = [row(tag) for _ in range(5)]

    async def work(pg):
        async with pg.pool.connection() as c:
            return await copy_idempotent(c, rows), await copy_idempotent(c, rows + [rows[0]])

    assert asyncio.run(with_pool(work)) == (5, 0)
    assert stored(conn, tag) == {str(r[0]): 1 for r in rows}


def test_the_consumer_absorbs_a_redelivered_batch_from_the_broker(conn, tag):
    """The same records appended to the topic twice (what a redelivery or a retried send looks like to
    the consumer) end up as one row per id."""
    from aiokafka import AIOKafkaProducer

    from targets.scaling_writes.store import TOPIC, encode

    rows = [row(tag) for _ in range(20)]

    async def produce():
        producer = AIOKafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for _ in range(2):
                for r in rows:
                    await producer.send(TOPIC, encode(r), key=r[0].bytes)
                await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    assert checks().wait_drained(30), "the consumer did not drain the topic within 30 s"
    assert stored(conn, tag) == {str(r[0]): 1 for r in rows}


def test_the_invariants_catch_a_dropped_a_duplicated_and_a_phantom_event(conn, tag):
    ids = [uuid.uuid4() for _ in range(6)]
    for event_id in ids[:5]:
        conn.execute(f"INSERT INTO {TABLE} (id, tag, short_code, url, user_agent, clicked_at) "
                     "VALUES (%s, %s, 'abc', 'u', 'a', 0)", (event_id, tag))
    sent = {str(i) for i in ids[:5]}
    healthy = {r.name: r.value for r in checks().check_events(conn, tag, sent, sent)}
    assert healthy == {"lost_events": 0, "duplicate_events": 0, "phantom_events": 0}

    conn.execute(f"DELETE FROM {TABLE} WHERE id = %s", (ids[0],))  # dropped after its acknowledgement
    conn.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE id = %s", (ids[1],))  # written twice
    conn.execute(f"INSERT INTO {TABLE} (id, tag, short_code, url, user_agent, clicked_at) "
                 "VALUES (%s, %s, 'abc', 'u', 'a', 0)", (ids[5], tag))  # never sent
    broken = {r.name: (r.value, r.passed) for r in checks().check_events(conn, tag, sent, sent)}
    assert broken == {"lost_events": (1, False), "duplicate_events": (1, False), "phantom_events": (1, False)}


@pytest.mark.parametrize("variant,status", [("direct", 201), ("batched", 201), ("queued", 202)])
def test_every_variant_acknowledges_a_durable_event_and_refuses_bad_input(target_urls, conn, tag, variant, status):
    base = f"{target_urls['scaling_writes']}/{variant}/events"
    event = {"id": str(uuid.uuid4()), "tag": tag, "short_code": "abc", "url": "https://e.com/",
             "user_agent": "a", "clicked_at": time.time()}
    assert requests.post(base, json=event, timeout=10).status_code == status
    for field, bad in (("id", "not-a-uuid"), ("short_code", "x" * 17), ("url", "\x00"), ("clicked_at", -1),
                       ("tag", ""), ("user_agent", None)):
        response = requests.post(base, json={**event, "id": str(uuid.uuid4()), field: bad}, timeout=10)
        assert response.status_code == 422, (field, response.status_code, response.text)
    if variant == "queued":
        assert checks().wait_drained(30)
    assert stored(conn, tag) == {event["id"]: 1}


def test_with_postgres_killed_only_queued_acknowledges_and_nothing_acknowledged_is_lost(stack, target_urls, conn, tag):
    """PostgreSQL SIGKILLed: direct and batched answer 503 (never a 2xx for what was not committed), queued
    keeps answering 202; once PostgreSQL is back the consumer writes the backlog, and every acknowledged id
    is there exactly once."""
    base, sent, acknowledged, statuses = target_urls["scaling_writes"], set(), set(), {}
    stack.fault_begin("postgres", "kill")
    try:
        for variant in ("direct", "batched", "queued") * 2:  # each refused write waits out the pool's timeout
            event = {"id": str(uuid.uuid4()), "tag": tag, "short_code": "abc", "url": "https://e.com/",
                     "user_agent": "a", "clicked_at": time.time()}
            sent.add(event["id"])
            status = requests.post(f"{base}/{variant}/events", json=event, timeout=30).status_code
            statuses.setdefault(variant, set()).add(status)
            if status in (201, 202):
                acknowledged.add(event["id"])
    finally:
        stack.fault_end("postgres", "kill")
    assert statuses == {"direct": {503}, "batched": {503}, "queued": {202}}
    assert checks().wait_drained(60)
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as fresh:
        results = {r.name: r.value for r in checks().check_events(fresh, tag, sent, acknowledged)}
    assert results == {"lost_events": 0, "duplicate_events": 0, "phantom_events": 0}
    assert len(acknowledged) == 2
