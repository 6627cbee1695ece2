"""Dealing with Contention: every user claims units of a few hot seats (or many), as fast as it can.

Run it as plain Locust (web UI, or add --headless -u 32 -t 20s):

    locust -f locustfiles/contention.py --variant optimistic --hot-seats 2

The variants, scenarios and claims are the module's spec (`harness/modules/contention.py`). Each
test creates its own event (named `<run id>:<phase>:<variant>`, so every worker finds the same one)
with --hot-seats rows of --capacity units; each claim picks one of the rows at random, so fewer hot
seats is more contention. redis_hold holds a unit and then confirms it, except for --abandon of the
holds, which are left to expire. A 200 is a sale; a 409 "sold_out" is a correct answer too; any
other answer (409 gave_up / stale / expired, 5xx) is a failed claim.

When the test stops, the invariants wait until the target has no request in flight (a retry or a
lock wait still running when Locust stopped its users), then read PostgreSQL in one snapshot, and
Redis: no (seat, unit) in two sales, no row past its capacity or off its counter, every sale answer
matching exactly one sale by request id and no sale without one, and for redis_hold no live hold on
a unit sold to someone else. A sale whose request the stop cut off before any answer is in flight,
not a violation.
"""

from __future__ import annotations

import random
import uuid

import psycopg
import redis
import requests
from locust import FastHttpUser, events, task

from harness import loadgen
from harness.loadgen import ProfileShape  # noqa: F401  (Locust plays the shape it finds here)
from harness.modules.contention import CLAIM, SPEC
from harness.settings import get_settings
from locustfiles.contention_checks import check_holds, check_sales

CONFIRM = "POST /events/[id]/confirm"
SOLD = "sales_answered"
SENT, RESPONDED = "sales_sent", "sales_responded"  # sent minus responded: cut off by the stop
plugin = loadgen.setup(SPEC)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("contention")
    group.add_argument("--hot-seats", type=int, default=2, env_var="LOCUST_HOT_SEATS",
                       help="seat rows every user fights over (fewer: more contention)")
    group.add_argument("--capacity", type=int, default=1_000_000_000, env_var="LOCUST_CAPACITY",
                       help="units per seat row (1: numbered seats that sell out at once)")
    group.add_argument("--abandon", type=float, default=0.1, env_var="LOCUST_ABANDON",
                       help="redis_hold: share of holds never confirmed (they expire and the seat returns)")


@events.init.add_listener
def _check_options(environment, **_) -> None:
    o = environment.parsed_options
    problems = [text for bad, text in (
        (not 1 <= o.hot_seats <= 10_000, f"--hot-seats must be between 1 and 10000, got {o.hot_seats}"),
        (not 1 <= o.capacity <= 1_000_000_000, f"--capacity must be between 1 and 1e9, got {o.capacity}"),
        (not 0 <= o.abandon <= 1, f"--abandon must be between 0 and 1, got {o.abandon}"),
    ) if bad]
    if problems:
        raise SystemExit("; ".join(problems))


def event_name(options) -> str:
    return f"{options.run_id}:{options.phase}:{options.variant}"


@events.test_start.add_listener
def _create_event(environment, **_) -> None:
    """Every process creates the phase's event by name (idempotent), so all of them claim the same one."""
    o = environment.parsed_options
    body = {"name": event_name(o), "seats": o.hot_seats, "capacity": o.capacity}
    response = requests.post(f"{environment.host}/{o.variant}/events", json=body, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"cannot create the event: {response.status_code} {response.text[:200]}")
    environment.contention_event = response.json()["id"]


class Buyer(loadgen.Paced, FastHttpUser):
    """Closed model (default): no think time. Open model (--rate R): R claims per second."""

    def on_start(self) -> None:
        o = self.environment.parsed_options
        self.options, self.user = o, f"user-{uuid.uuid4().hex[:12]}"
        self.base = f"/{o.variant}/events/{self.environment.contention_event}"
        self.plugin = self.environment.harness
        super().on_start()

    @task
    def claim(self) -> None:
        request_id = uuid.uuid4().hex
        body = {"seat": random.randint(1, self.options.hot_seats), "user": self.user, "request_id": request_id}
        unit = self.post("/claims", CLAIM, body, sale=self.options.variant != "redis_hold")
        if unit is not None and self.options.variant == "redis_hold" and random.random() >= self.options.abandon:
            self.post("/confirm", CONFIRM, {**body, "unit": unit}, sale=True)

    def post(self, path: str, name: str, body: dict, sale: bool) -> int | None:
        """The unit on a 200; a 409 sold_out is a correct answer too; anything else fails."""
        if sale:
            self.plugin.add_id(SENT, body["request_id"])
        with self.client.post(self.base + path, json=body, name=name, catch_response=True) as response:
            if sale and response.status_code:
                self.plugin.add_id(RESPONDED, body["request_id"])
            if response.status_code == 200:
                if sale:
                    self.plugin.add_id(SOLD, body["request_id"])
                return response.json()["unit"]
            reason = _reason(response)
            if response.status_code == 409 and reason == "sold_out":
                response.success()
            else:
                response.failure(f"{response.status_code} {reason}")
        return None


def _reason(response) -> str:
    try:
        return response.json().get("reason") or ""
    except Exception:  # not JSON: a proxy's page, a dropped connection
        return ""


# --- invariants: the checks are in contention_checks.py (tests import them without Locust) ---------
def _connect() -> psycopg.Connection:
    return psycopg.connect(get_settings().pg_dsn, connect_timeout=5, autocommit=True)


@plugin.invariant("double_sold", "over_capacity", "lost_updates", "answers_without_one_row", "unanswered_rows")
def _sales_kept(environment) -> list:
    harness = environment.harness
    with _connect() as conn:
        return check_sales(conn, environment.contention_event, harness.ids(SOLD),
                           cut_off=harness.ids(SENT) - harness.ids(RESPONDED))


@plugin.invariant("held_and_sold")
def _holds_kept(environment) -> list:
    if environment.parsed_options.variant != "redis_hold":
        return []
    with _connect() as conn, redis.Redis.from_url(get_settings().redis_url, decode_responses=True,
                                                  socket_timeout=10) as cache:
        return [check_holds(cache, conn, environment.contention_event)]
