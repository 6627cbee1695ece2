"""Multi-step Processes' invariant checks, with explicit inputs: the locustfile registers them, and tests
call them directly (importing the locustfile would bind Locust's event bus a second time).

Everything is read by order id from the participants' own databases: an order's state in ms_orders,
its payment in ms_payments, its reservation in ms_inventory (on the second cluster).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from harness.loadgen.invariants import Quiescence
from harness.spec import InvariantResult

DATABASES = {"orders": "ms_orders", "payments": "ms_payments", "inventory": "ms_inventory"}
EXAMPLES = 5


@dataclass(frozen=True)
class Batch:
    """What a phase's batch was given: accounts 1..n with `balance` each, items 1..n with `stock` each."""

    name: str
    accounts: int
    balance: int
    items: int
    stock: int


def connect(cluster_dsn: str, participant: str) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(cluster_dsn, dbname=DATABASES[participant]), autocommit=True,
                           connect_timeout=5)


def _some(items) -> str:
    items = sorted(items, key=str)
    return ", ".join(map(str, items[:EXAMPLES])) + (f" and {len(items) - EXAMPLES} more" if len(items) > EXAMPLES
                                                    else "")


def half_done(orders: dict[str, str], payments: dict[str, str], reservations: dict[str, str]) -> InvariantResult:
    """orders {id: status}, payments {id: captured|refunded}, reservations {id: reserved|released}: an order
    is whole when completed with both effects, or undone (compensated, failed) with neither."""
    bad = {}
    for order_id, status in orders.items():
        paid, reserved = payments.get(order_id) == "captured", reservations.get(order_id) == "reserved"
        if status == "completed" and not (paid and reserved):
            bad[order_id] = "completed without " + ("payment" if not paid else "stock")
        elif status in ("compensated", "failed") and (paid or reserved):
            bad[order_id] = f"{status} but still " + ("charged" if paid else "holding stock")
        elif status not in ("completed", "compensated", "failed"):
            bad[order_id] = f"{status} after the settle"
    orphans = (set(payments) | set(reservations)) - set(orders)
    bad.update({o: "an effect without its order" for o in orphans
                if payments.get(o) == "captured" or reservations.get(o) == "reserved"})
    kinds: dict[str, int] = {}
    for reason in bad.values():
        kinds[reason] = kinds.get(reason, 0) + 1
    detail = (f"{len(orders)} orders; {len(bad)} half-done"
              + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), e.g. {_some(bad)}" if bad else ""))
    return InvariantResult("half_done", len(bad), "== 0", not bad, detail)


def check_batch(orders_conn, payments_conn, inventory_conn, batch: Batch) -> list[InvariantResult]:
    orders = dict(orders_conn.execute("SELECT order_id, status FROM orders WHERE batch = %s", (batch.name,)))
    payments = {o: (s, a) for o, s, a in payments_conn.execute(
        "SELECT order_id, state, amount FROM payments WHERE batch = %s", (batch.name,))}
    reservations = {o: (s, q) for o, s, q in inventory_conn.execute(
        "SELECT order_id, state, qty FROM reservations WHERE batch = %s", (batch.name,))}
    balances = payments_conn.execute("SELECT coalesce(sum(balance), 0)::bigint, count(*) FROM accounts "
                                     "WHERE batch = %s", (batch.name,)).fetchone()
    stock = inventory_conn.execute("SELECT coalesce(sum(stock), 0)::bigint, coalesce(min(stock), 0), count(*) "
                                   "FROM stock WHERE batch = %s", (batch.name,)).fetchone()
    captured = sum(a for s, a in payments.values() if s == "captured")
    reserved = sum(q for s, q in reservations.values() if s == "reserved")
    given_money, given_stock = batch.accounts * batch.balance, batch.items * batch.stock
    money_gap, stock_gap = balances[0] + captured - given_money, stock[0] + reserved - given_stock
    return [
        half_done(orders, {o: s for o, (s, _) in payments.items()}, {o: s for o, (s, _) in reservations.items()}),
        InvariantResult("money_conserved", abs(money_gap), "== 0", balances[1] > 0 and money_gap == 0,
                        f"{balances[1]} accounts: balances {balances[0]:,} + captured {captured:,} vs given "
                        f"{given_money:,} (gap {money_gap:+,})"),
        InvariantResult("stock_conserved", abs(stock_gap) + max(0, -stock[1]), "== 0",
                        stock[2] > 0 and stock_gap == 0 and stock[1] >= 0,
                        f"{stock[2]} items: stock {stock[0]:,} + reserved {reserved:,} vs given {given_stock:,} "
                        f"(gap {stock_gap:+,}); lowest stock {stock[1]}"),
    ]


def prepared(conn) -> list[tuple[str, str]]:
    """(gid, database) of this module's prepared transactions on the cluster `conn` is connected to."""
    return conn.execute("SELECT gid, database FROM pg_prepared_xacts WHERE gid LIKE 'ms:%'").fetchall()


def roll_back_prepared(cluster_dsn: str) -> int:
    """Teardown: roll back every prepared transaction of this module on the cluster; how many."""
    with psycopg.connect(cluster_dsn, autocommit=True, connect_timeout=5) as conn:
        left = prepared(conn)
    for gid, database in left:
        with psycopg.connect(make_conninfo(cluster_dsn, dbname=database), autocommit=True, connect_timeout=5) as c:
            try:
                c.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))
            except psycopg.errors.UndefinedObject:
                pass  # resolved meanwhile
    return len(left)


def check_prepared(clusters: dict[str, str]) -> InvariantResult:
    """After the settle: this module's prepared transactions left on each cluster (rolled back, counted)."""
    left = {name: roll_back_prepared(dsn) for name, dsn in clusters.items()}
    total = sum(left.values())
    return InvariantResult("prepared_left", total, "== 0", total == 0,
                           "; ".join(f"{name}: {n} left (rolled back)" for name, n in left.items()))


def fingerprint(orders_conn, clusters: dict[str, str], batch: str) -> tuple:
    """Order states of the batch, prepared transactions and pending sagas: equal twice, the flows are done."""
    states = tuple(orders_conn.execute("SELECT status, count(*) FROM orders WHERE batch = %s GROUP BY 1 ORDER BY 1",
                                       (batch,)).fetchall())
    in_doubt = 0
    for dsn in clusters.values():
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            in_doubt += len(prepared(conn))
    sagas = orders_conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'ms_dbos'").fetchone()[0]
    if sagas:
        with psycopg.connect(make_conninfo(clusters["postgres"], dbname="ms_dbos"), autocommit=True,
                             connect_timeout=5) as conn:
            sagas = conn.execute("SELECT count(*) FROM dbos.workflow_status WHERE status = 'PENDING'").fetchone()[0]
    return states, in_doubt, sagas


def settled(probe, sleep=time.sleep) -> Callable[[object], bool]:
    """Ready when nothing changed over a second and no prepared transaction or pending saga is left: an
    in-doubt transaction or a saga still resolving is the target's in-flight work."""
    quiet = Quiescence(probe, interval_s=1.0, sleep=sleep)

    def ready(_context=None) -> bool:
        return quiet() and probe()[1:] == (0, 0)

    return ready
