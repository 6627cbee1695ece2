"""Multi-step Processes: orders across three participants, at a fixed rate (--rate) or as fast as users can.

Run it as plain Locust (web UI, or add --headless -u 16 -t 20s):

    locust -f locustfiles/multi_step.py --variant two_phase

The variants, scenarios and claims are the module's spec (`harness/modules/multi_step.py`). Each test
creates its own batch of accounts and items (named `<run id>:<phase>:<variant>`, so every worker finds
the same one). An order picks an account and an item at random; --fail-share of orders go to account 0
(no money: the charge is refused) or item 0 (sold out: the reservation after the charge is refused).
A 200 completed and a 409 compensated / failed are correct answers, and so is a 202 (accepted, not
final yet: the invariants check that it converges); anything else fails.

When the test stops, after the settle (nothing changes for a second, no prepared transaction and no
pending saga left), the invariants are checked by order id against the three databases.
"""

from __future__ import annotations

import random
import uuid

import requests
from locust import FastHttpUser, events, task

from harness import loadgen
from harness.loadgen import ProfileShape  # noqa: F401  (Locust plays the shape it finds here)
from harness.modules.multi_step import ORDER, SPEC
from harness.settings import get_settings
from locustfiles.multi_step_checks import Batch, check_batch, check_prepared, connect, fingerprint, settled

BALANCE, STOCK = 10**9, 10**8
plugin = loadgen.setup(SPEC)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("multi_step")
    group.add_argument("--accounts", type=int, default=1000, env_var="LOCUST_ACCOUNTS", help="accounts in the batch")
    group.add_argument("--items", type=int, default=1000, env_var="LOCUST_ITEMS",
                       help="items in the batch (1: every order on one hot item)")
    group.add_argument("--fail-share", type=float, default=0.1, env_var="LOCUST_FAIL_SHARE",
                       help="share of orders a participant refuses on purpose (half at the charge, half after it)")


@events.init.add_listener
def _check_options(environment, **_) -> None:
    o = environment.parsed_options
    problems = [text for bad, text in (
        (not 1 <= o.accounts <= 100_000, f"--accounts must be between 1 and 100000, got {o.accounts}"),
        (not 1 <= o.items <= 100_000, f"--items must be between 1 and 100000, got {o.items}"),
        (not 0 <= o.fail_share <= 1, f"--fail-share must be between 0 and 1, got {o.fail_share}"),
    ) if bad]
    if problems:
        raise SystemExit("; ".join(problems))


def batch_of(options) -> Batch:
    return Batch(f"{options.run_id}:{options.phase}:{options.variant}", options.accounts, BALANCE, options.items,
                 STOCK)


@events.test_start.add_listener
def _create_batch(environment, **_) -> None:
    o = environment.parsed_options
    batch = batch_of(o)
    body = {"name": batch.name, "accounts": batch.accounts, "balance": batch.balance, "items": batch.items,
            "stock": batch.stock}
    response = requests.post(f"{environment.host}/{o.variant}/batches", json=body, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"cannot create the batch: {response.status_code} {response.text[:200]}")
    environment.multi_step_batch = batch


class Buyer(loadgen.Paced, FastHttpUser):
    """Closed model (default): no think time. Open model (--rate R): R orders per second."""

    def on_start(self) -> None:
        self.options, self.batch = self.environment.parsed_options, self.environment.multi_step_batch
        self.path = f"/{self.options.variant}/orders"
        super().on_start()

    @task
    def order(self) -> None:
        o, roll = self.options, random.random()
        account = 0 if roll < o.fail_share / 2 else random.randint(1, o.accounts)
        item = 0 if o.fail_share / 2 <= roll < o.fail_share else random.randint(1, o.items)
        body = {"order_id": uuid.uuid4().hex, "batch": self.batch.name, "account": account, "item": item, "qty": 1,
                "amount": random.randint(1, 100)}
        with self.client.post(self.path, json=body, name=ORDER, catch_response=True,
                              context=self.context()) as response:
            if response.status_code in (200, 202) or (response.status_code == 409 and _status(response) in
                                                      ("compensated", "failed")):
                response.success()
            else:
                response.failure(f"{response.status_code} {_status(response)}")


def _status(response) -> str:
    try:
        return response.json().get("status") or response.json().get("error") or ""
    except Exception:  # not JSON: a dropped connection
        return ""


# --- invariants: the checks are in multi_step_checks.py (tests import them without Locust) ----------
def _clusters() -> dict[str, str]:
    settings = get_settings()
    return {"postgres": settings.pg_dsn, "postgres2": settings.pg2_dsn}


def _probe(environment):
    clusters = _clusters()
    with connect(clusters["postgres"], "orders") as conn:
        return fingerprint(conn, clusters, environment.multi_step_batch.name)


@plugin.invariant("half_done", "money_conserved", "stock_conserved", "prepared_left",
                  settle=lambda env: settled(lambda: _probe(env))(env), settle_timeout_s=40)
def _orders_whole(environment) -> list:
    clusters = _clusters()
    with connect(clusters["postgres"], "orders") as orders, connect(clusters["postgres"], "payments") as payments, \
            connect(clusters["postgres2"], "inventory") as inventory:
        results = check_batch(orders, payments, inventory, environment.multi_step_batch)
    return [*results, check_prepared(clusters)]
