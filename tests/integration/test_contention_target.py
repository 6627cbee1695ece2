"""Dealing with Contention against the real target, PostgreSQL and Redis of the embedded stack:
concurrent claims on one seat yield exactly one winner in every safe variant; optimistic retry
exhaustion answers 409; the fencing token rejects a holder paused past its lease (armed and disarmed
by the target's knobs, which need the admin token and refuse bad ones); holds expire and their seats
return; Redis down is a 503 for the Redis variants, never a 500."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from served import serve

from harness.loadgen import knobs
from harness.loadgen.invariants import in_flight, in_flight_after, wait_until
from harness.modules.contention import SAFE
from harness.modules.contention import SPEC as CONTENTION
from harness.settings import get_settings
from harness.spec import Knob

pytestmark = pytest.mark.integration
CONTENDERS = 24


@pytest.fixture()
def base(target_urls) -> str:
    return target_urls["contention"]


def new_event(base: str, variant: str, seats: int = 1, capacity: int = 1) -> int:
    body = {"name": f"test-{uuid.uuid4().hex}", "seats": seats, "capacity": capacity}
    response = requests.post(f"{base}/{variant}/events", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def claim(session: requests.Session, base: str, variant: str, event: int, seat: int = 1, user: str = "") -> dict:
    body = {"seat": seat, "user": user or f"u-{uuid.uuid4().hex[:8]}", "request_id": uuid.uuid4().hex}
    response = session.post(f"{base}/{variant}/events/{event}/claims", json=body, timeout=30)
    return {"status": response.status_code, **response.json(), **body}


def race(base: str, variant: str, event: int, contenders: int = CONTENDERS) -> list[dict]:
    """`contenders` claims released together (a barrier) on seat 1 of the event."""
    barrier, local = threading.Barrier(contenders), threading.local()

    def one(_):
        local.session = getattr(local, "session", None) or requests.Session()
        barrier.wait(timeout=30)
        return claim(local.session, base, variant, event)

    with ThreadPoolExecutor(contenders) as pool:
        return list(pool.map(one, range(contenders)))


def sales(event: int) -> list[tuple]:
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as conn:
        return conn.execute("SELECT seat, unit, request_id FROM contention_sales WHERE event_id = %s",
                            (event,)).fetchall()


@pytest.mark.parametrize("variant", [v for v in SAFE if v != "redis_hold"])
def test_one_seat_many_claims_one_winner(base, variant):
    event = new_event(base, variant)
    answers = race(base, variant, event)
    winners = [a for a in answers if a["status"] == 200]
    assert len(winners) == 1, answers
    assert {a["status"] for a in answers} <= {200, 409}, answers
    assert sales(event) == [(1, 1, winners[0]["request_id"])]


def test_redis_hold_one_hold_per_seat_and_one_sale(base):
    event = new_event(base, "redis_hold")
    answers = race(base, "redis_hold", event)
    holders = [a for a in answers if a["status"] == 200]
    assert len(holders) == 1 and all(a["reason"] == "sold_out" for a in answers if a["status"] != 200), answers
    winner = holders[0]
    confirm = {k: winner[k] for k in ("seat", "unit", "user", "request_id")}
    assert requests.post(f"{base}/redis_hold/events/{event}/confirm", json=confirm, timeout=10).status_code == 200
    again = requests.post(f"{base}/redis_hold/events/{event}/confirm", json=confirm, timeout=10)
    assert again.status_code == 409 and again.json()["reason"] == "expired"  # a hold confirms once
    assert sales(event) == [(1, 1, winner["request_id"])]


def test_naive_sells_a_seat_more_than_once(base):
    """The race on purpose: among several rounds of simultaneous claims, some seat gets two winners."""
    doubled = 0
    for _ in range(10):
        event = new_event(base, "naive")
        doubled = sum(a["status"] == 200 for a in race(base, "naive", event)) - 1
        if doubled:
            break
    assert doubled >= 1


def test_optimistic_retry_exhaustion_is_a_409(stack):
    """A target allowed no retry: among simultaneous claims on one stock row the conflicts give up at once,
    with a 409 gave_up that wrote nothing."""
    from targets.common import TargetSettings
    from targets.contention.main import build
    from targets.contention.settings import Settings

    settings = get_settings()
    app = build(TargetSettings(pg_dsn=settings.pg_dsn, redis_url=settings.redis_url),
                Settings(max_retries=0))
    with serve(app) as base:
        event = new_event(base, "optimistic", capacity=1_000_000)
        answers = []
        for _ in range(10):  # bounded: a round without a single conflict is possible, ten are not
            answers += race(base, "optimistic", event)
            if any(a["status"] == 409 for a in answers):
                break
        metrics = requests.get(f"{base}/metrics", timeout=10).text
    gave_up = [a for a in answers if a["status"] == 409]
    assert gave_up and {a["reason"] for a in gave_up} == {"gave_up"}, answers
    assert {a["status"] for a in answers} <= {200, 409}
    won = [a["request_id"] for a in answers if a["status"] == 200]
    assert sorted(r for _, _, r in sales(event)) == sorted(won)  # a 409 wrote nothing
    assert 'harness_claims_total{module="contention",outcome="failed",variant="optimistic"}' in metrics


def put_knobs(base: str, token: str | None = "", **body) -> requests.Response:
    token = get_settings().admin_secret if token == "" else token
    return requests.put(f"{base}/admin/knobs", json=body, timeout=10,
                        headers={"Authorization": f"Bearer {token}"} if token else {})


def paused_race(base: str) -> tuple[dict, dict, int]:
    """Two claims on one redis_lock seat, the second sent 0.3 s after the first: (first, second, event)."""
    event = new_event(base, "redis_lock", capacity=10)
    with ThreadPoolExecutor(1) as pool, requests.Session() as session:
        first = pool.submit(claim, requests.Session(), base, "redis_lock", event)
        threading.Event().wait(0.3)  # the first one holds the lock first
        second = claim(session, base, "redis_lock", event)
        return first.result(timeout=30), second, event


def test_fencing_token_rejects_a_holder_paused_past_its_lease(base):
    """Armed by the knobs, the first holder sleeps past its lease (1 s + 300 ms) inside its critical
    section; a second claim takes the expired lock and sells; the first one's write carries an older
    token and is refused. Disarmed (PUT {}), the same race has no stale holder."""
    armed = put_knobs(base, pause_every=1, pause_count=1)
    assert armed.status_code == 200 and armed.json() == {"pause_every": 1, "pause_past_lease_ms": 300,
                                                         "pause_count": 1}
    try:
        stale, late, event = paused_race(base)
    finally:
        assert put_knobs(base).status_code == 200
    assert late["status"] == 200, late
    assert stale["status"] == 409 and stale["reason"] == "stale", stale
    assert [r for _, _, r in sales(event)] == [late["request_id"]]
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert 'harness_stale_writes_rejected_total{module="contention",variant="redis_lock"}' in metrics
    first, second, event = paused_race(base)
    assert (first["status"], second["status"]) == (200, 200), (first, second)
    assert len(sales(event)) == 2


def test_knobs_need_the_admin_token_and_bad_ones_are_422(base):
    assert put_knobs(base, token=None, pause_every=1).status_code == 401
    assert put_knobs(base, token="wrong", pause_every=1).status_code == 403
    unknown = put_knobs(base, pause_evry=1)
    assert unknown.status_code == 422 and "pause_evry" in unknown.json()["error"], unknown.text
    bad = put_knobs(base, pause_every=-1)
    assert bad.status_code == 422 and "pause_every" in bad.json()["error"], bad.text
    current = requests.get(f"{base}/admin/knobs", timeout=10,
                           headers={"Authorization": f"Bearer {get_settings().admin_secret}"})
    assert current.json() == {"pause_every": 0, "pause_past_lease_ms": 300, "pause_count": 0}  # nothing changed
    assert "/admin/knobs" in requests.get(f"{base}/openapi.json", timeout=10).json()["paths"]


def test_the_load_side_sets_a_scenario_knobs_and_resets_them(base):
    """harness.loadgen.knobs, as the plugin calls it at test start and stop, against the real target."""
    settings, scenario = get_settings(), CONTENTION.scenario("paused_holder")
    headers = {"Authorization": f"Bearer {settings.admin_secret}"}
    knobs.apply(CONTENTION, scenario.knobs, settings)
    try:
        current = requests.get(f"{base}/admin/knobs", headers=headers, timeout=10).json()
        assert {k: current[k] for k in ("pause_every", "pause_past_lease_ms")} == {
            k.name: k.value for k in scenario.knobs}
    finally:
        knobs.reset(CONTENTION, scenario.knobs, settings)
    assert requests.get(f"{base}/admin/knobs", headers=headers, timeout=10).json()["pause_every"] == 0
    with pytest.raises(RuntimeError, match=r"contention refused the knobs \{'bogus': 1\}: 422 .*bogus"):
        knobs.apply(CONTENTION, [Knob(service="contention", name="bogus", value=1)], settings)


def test_an_unconfirmed_hold_expires_and_its_seat_returns(base):
    event = new_event(base, "redis_hold")  # one seat, one unit; holds last 1.5 s
    with requests.Session() as session:
        first = claim(session, base, "redis_hold", event)
        assert first["status"] == 200
        assert claim(session, base, "redis_hold", event)["reason"] == "sold_out"
        second = None
        for _ in range(60):  # bounded: 6 s for a 1.5 s hold
            second = claim(session, base, "redis_hold", event)
            if second["status"] == 200:
                break
            threading.Event().wait(0.1)
    assert second["status"] == 200 and second["unit"] == first["unit"]
    late = {k: first[k] for k in ("seat", "unit", "user", "request_id")}
    refused = requests.post(f"{base}/redis_hold/events/{event}/confirm", json=late, timeout=10)
    assert refused.status_code == 409 and refused.json()["reason"] == "expired"


@pytest.mark.parametrize("body", [{"seat": 0, "user": "u", "request_id": "r"},
                                  {"seat": 2, "user": "u", "request_id": "r"},
                                  {"seat": 1, "user": "", "request_id": "r"},
                                  {"seat": 1, "user": "u\x00", "request_id": "r"},
                                  {"seat": "x", "user": "u", "request_id": "r"}])
def test_bad_claims_are_4xx(base, body):
    event = new_event(base, "atomic")
    response = requests.post(f"{base}/atomic/events/{event}/claims", json=body, timeout=10)
    assert 400 <= response.status_code < 500, response.text


def test_unknown_event_is_404(base):
    response = requests.post(f"{base}/atomic/events/2147483000/claims", json={"seat": 1, "user": "u",
                                                                               "request_id": "r"}, timeout=10)
    assert response.status_code == 404


def test_redis_down_is_503_for_redis_variants_and_the_database_ones_keep_selling(stack, base):
    events = {v: new_event(base, v, capacity=100) for v in ("redis_lock", "redis_hold", "atomic")}
    stack.fault_begin("redis", "kill")
    try:
        with requests.Session() as session:
            for variant in ("redis_lock", "redis_hold"):
                assert claim(session, base, variant, events[variant])["status"] == 503
            assert claim(session, base, "atomic", events["atomic"])["status"] == 200
    finally:
        stack.fault_end("redis", "kill")
    with requests.Session() as session:
        for _ in range(50):  # bounded: the breaker lets a probe through every second
            if claim(session, base, "redis_lock", events["redis_lock"])["status"] == 200:
                break
            threading.Event().wait(0.2)
        else:
            pytest.fail("redis_lock did not recover after Redis came back")


def test_in_flight_work_is_reported_and_the_checks_wait_for_it(base):
    """A paused lock holder (1.3 s in its critical section) is in flight on /healthz while it works;
    `in_flight_after`, which every store-reading invariant check runs first, returns only once it is done
    (so a sale committed after Locust stopped its users is read, not missed), and gives up with the count
    when the bound is shorter than the work."""
    assert put_knobs(base, pause_every=1, pause_count=1).status_code == 200
    try:
        event = new_event(base, "redis_lock", capacity=10)
        with ThreadPoolExecutor(1) as pool:
            paused = pool.submit(claim, requests.Session(), base, "redis_lock", event)
            assert wait_until(lambda: in_flight(base) == 1, 5)
            assert in_flight_after(base, 0.2) == 1  # a bound shorter than the pause: still in flight
            assert in_flight_after(base, 10) == 0
            assert paused.done() or paused.result(timeout=5)
            assert len(sales(event)) == 1  # what the paused holder wrote is in the store when the wait ends
    finally:
        assert put_knobs(base).status_code == 200
    assert in_flight("http://127.0.0.1:1") == 0  # nothing listening: no work in flight
