"""Multi-step Processes on the real PostgreSQL clusters (the primary and postgres2): a coordinator SIGKILLed
after PREPARE, then recovery resolving every in-doubt transaction by the decision log; a compensation
run twice has one effect; the invariant catching a half-done order (naive's), and a whole one passing.

The flows are the target's own classes on real pools; the killed coordinator is a real process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from harness.loadgen.invariants import wait_until
from harness.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def checks():
    from locustfiles import multi_step_checks

    return multi_step_checks


def clusters() -> dict[str, str]:
    settings = get_settings()
    return {"postgres": settings.pg_dsn, "postgres2": settings.pg2_dsn}


async def _participants():
    from targets.multi_step import flows, store
    from targets.resources import Postgres

    pools = {}
    for name in store.DATABASES:
        cluster = clusters()["postgres2" if name == "inventory" else "postgres"]
        pools[name] = Postgres(store.database_dsn(cluster, name), size=4)
        await pools[name].open()
    return flows.Participants(**pools)


async def _close(participants) -> None:
    for name in ("orders", "payments", "inventory"):
        await getattr(participants, name).close()


def run(coroutine_function, *args):
    async def main():
        participants = await _participants()
        try:
            return await coroutine_function(participants, *args)
        finally:
            await _close(participants)

    return asyncio.run(main())


@pytest.fixture()
def batch(stack, checks):
    """A fresh batch: accounts 1..3 with 1,000 each (0 has none), items 1..3 with 10 each (0 sold out)."""
    from targets.multi_step import store

    for cluster, names in ((clusters()["postgres"], ("orders", "payments")), (clusters()["postgres2"], ("inventory",))):
        store.create_databases(cluster, names)
    name = f"test:{uuid.uuid4().hex[:12]}"

    async def seed(p):
        await store.seed_batch(p.pool("payments"), p.pool("inventory"), name, 3, 1000, 3, 10)

    run(seed)
    return checks.Batch(name, 3, 1000, 3, 10)


def order(batch, account=1, item=1, amount=100):
    from targets.multi_step.store import Order

    return Order(uuid.uuid4().hex, batch.name, account, item, 1, amount)


def results(checks, batch) -> dict:
    primary, second = clusters()["postgres"], clusters()["postgres2"]
    with checks.connect(primary, "orders") as o, checks.connect(primary, "payments") as p, \
            checks.connect(second, "inventory") as i:
        return {r.name: r for r in checks.check_batch(o, p, i, batch)}


def prepared_gids(order_id: str) -> set[str]:
    found = set()
    for dsn in clusters().values():
        with psycopg.connect(dsn, autocommit=True) as conn:
            found |= {g for (g,) in conn.execute("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE %s",
                                                 (f"%:{order_id}",))}
    return found


COORDINATOR = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, "tests/integration")
    from test_multi_step_flows import _participants
    from targets.multi_step import flows
    from targets.multi_step.store import Order

    async def main():
        p = await _participants()
        p.delay_s = 600  # prepared on every participant, then waits: the test kills it here
        await flows.TwoPhase(p).run(Order(*sys.argv[1:3], *map(int, sys.argv[3:])))

    asyncio.run(main())
""")


def kill_after_prepare(the_order) -> None:
    """A real coordinator process prepares the order on all three participants and is SIGKILLed."""
    args = [the_order.order_id, the_order.batch, *map(str, (the_order.account, the_order.item, the_order.qty,
                                                             the_order.amount))]
    process = subprocess.Popen([sys.executable, "-c", COORDINATOR, *args], env=os.environ.copy(),
                               cwd=Path(__file__).resolve().parents[2])
    try:
        assert wait_until(lambda: len(prepared_gids(the_order.order_id)) == 3, 60), "the coordinator never prepared"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


@pytest.mark.parametrize("logged", [None, "commit"])
def test_a_coordinator_killed_after_prepare_is_resolved_by_recovery(checks, batch, logged):
    """No decision logged: presumed abort, every participant rolls back. A commit logged before the kill:
    every participant commits. Either way the order is whole and nothing stays prepared."""
    from targets.multi_step import flows

    the_order = order(batch)
    kill_after_prepare(the_order)
    # the prepared transactions hold their locks with no coordinator: a write on the same row waits
    payments = make_conninfo(clusters()["postgres"], dbname="ms_payments", options="-c lock_timeout=200")
    with psycopg.connect(payments, autocommit=True) as conn, pytest.raises(psycopg.errors.LockNotAvailable):
        conn.execute("UPDATE accounts SET balance = balance WHERE batch = %s AND account = 1", (batch.name,))
    if logged:
        with checks.connect(clusters()["postgres"], "orders") as conn:
            conn.execute("INSERT INTO decisions (order_id, decision) VALUES (%s, %s)", (the_order.order_id, logged))

    resolved = run(lambda p: flows.InDoubt(p, after_s=60).resolve(startup=True))

    assert resolved >= 3 and not prepared_gids(the_order.order_id)
    found = results(checks, batch)
    assert all(r.passed for r in found.values()), found
    with checks.connect(clusters()["postgres"], "orders") as conn:
        status = conn.execute("SELECT status FROM orders WHERE order_id = %s", (the_order.order_id,)).fetchone()
    assert (status[0] if status else None) == ("completed" if logged else None)


def test_recovery_leaves_a_live_coordinators_fresh_prepare_alone(checks, batch):
    """Past start-up only transactions older than `after_s` are in doubt: a coordinator mid-flow keeps its own."""
    from targets.multi_step import flows

    the_order = order(batch)
    kill_after_prepare(the_order)
    assert run(lambda p: flows.InDoubt(p, after_s=600).resolve()) == 0
    assert len(prepared_gids(the_order.order_id)) == 3
    assert run(lambda p: flows.InDoubt(p, after_s=600).resolve(startup=True)) >= 3


def test_a_compensation_run_twice_has_one_effect(checks, batch):
    from targets.multi_step import store

    the_order = order(batch, amount=250)

    async def twice(p):
        for participant, work in (("payments", lambda c: store.charge(c, the_order)),
                                  ("inventory", lambda c: store.reserve(c, the_order))):
            for _ in range(2):  # a step repeated (a resumed saga) has one effect too
                async with p.pool(participant).connection() as conn, conn.transaction():
                    await work(conn)
        undone = []
        for participant, undo in (("payments", store.refund), ("inventory", store.release)):
            for _ in range(2):
                async with p.pool(participant).connection() as conn, conn.transaction():
                    undone.append(await undo(conn, the_order.order_id))
        return undone

    assert run(twice) == [True, False, True, False]
    with checks.connect(clusters()["postgres"], "payments") as conn:
        assert conn.execute("SELECT balance FROM accounts WHERE batch = %s AND account = 1",
                            (batch.name,)).fetchone()[0] == 1000
    with checks.connect(clusters()["postgres2"], "inventory") as conn:
        assert conn.execute("SELECT stock FROM stock WHERE batch = %s AND item = 1", (batch.name,)).fetchone()[0] == 10
    found = results(checks, batch)
    assert found["money_conserved"].passed and found["stock_conserved"].passed


def test_the_invariant_catches_naives_half_done_order(checks, batch):
    """Naive's refusal at step 3 (item 0 is sold out) leaves the charge of step 2: half-done, and caught;
    two_phase's refusal undoes everything: whole."""
    from targets.multi_step import flows

    assert run(lambda p: flows.TwoPhase(p).run(order(batch, item=0)))[0] == "failed"
    assert results(checks, batch)["half_done"].passed
    status, reason = run(lambda p: flows.Naive(p).run(order(batch, item=0)))
    assert (status, reason) == ("failed", "out_of_stock")
    found = results(checks, batch)
    assert not found["half_done"].passed and found["half_done"].value == 1
    assert "failed but still charged" in found["half_done"].detail
    assert found["money_conserved"].passed, "the money is not lost: it is captured for an order that failed"


def test_broken_conservation_is_caught(checks, batch):
    with checks.connect(clusters()["postgres"], "payments") as conn:
        conn.execute("UPDATE accounts SET balance = balance - 1 WHERE batch = %s AND account = 2", (batch.name,))
    with checks.connect(clusters()["postgres2"], "inventory") as conn:
        conn.execute("UPDATE stock SET stock = -1 WHERE batch = %s AND item = 0", (batch.name,))
    found = results(checks, batch)
    assert not found["money_conserved"].passed and found["money_conserved"].value == 1
    assert not found["stock_conserved"].passed


def test_a_prepared_transaction_left_behind_is_counted_and_rolled_back(checks, batch):
    the_order = order(batch)
    kill_after_prepare(the_order)
    found = checks.check_prepared(clusters())
    assert not found.passed and found.value >= 3
    assert not prepared_gids(the_order.order_id)
    assert checks.check_prepared(clusters()).passed
