"""The three participants of the order flow, each owning its own PostgreSQL database:

  orders     ms_orders     (primary cluster)   an order and its state: pending -> completed | compensated | failed
  payments   ms_payments   (primary cluster)   a balance per account; a payment per order: captured | refunded
  inventory  ms_inventory  (second cluster)    stock per item; a reservation per order: reserved | released

Every operation is keyed by the order id and idempotent: a charge, a reservation, a refund or a release
run twice has one effect (the per-order row is the guard, written in the same transaction as the
balance or the stock). Each takes a connection, so the same SQL runs in its own transaction (naive,
the sagas) or inside a transaction that two-phase commit prepares. A business refusal (the balance or
the stock is short) raises `Refused`. A batch (one per phase of the workload) has its own accounts
and items, so a phase's invariants read only its own rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from targets.resources import advisory_lock_id

DATABASES = {"orders": "ms_orders", "payments": "ms_payments", "inventory": "ms_inventory"}
SCHEMAS = {
    "orders": """
CREATE TABLE IF NOT EXISTS orders (
    order_id text PRIMARY KEY, batch text NOT NULL, variant text NOT NULL, account int NOT NULL, item int NOT NULL,
    qty int NOT NULL, amount bigint NOT NULL, status text NOT NULL, steps int NOT NULL DEFAULT 0,
    compensations int NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz);
CREATE INDEX IF NOT EXISTS orders_batch ON orders (batch);
CREATE TABLE IF NOT EXISTS decisions (
    order_id text PRIMARY KEY, decision text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
""",
    "payments": """
CREATE TABLE IF NOT EXISTS accounts (batch text NOT NULL, account int NOT NULL, balance bigint NOT NULL,
    PRIMARY KEY (batch, account));
CREATE TABLE IF NOT EXISTS payments (order_id text PRIMARY KEY, batch text NOT NULL, account int NOT NULL,
    amount bigint NOT NULL, state text NOT NULL);
CREATE INDEX IF NOT EXISTS payments_batch ON payments (batch);
""",
    "inventory": """
CREATE TABLE IF NOT EXISTS stock (batch text NOT NULL, item int NOT NULL, stock int NOT NULL,
    PRIMARY KEY (batch, item));
CREATE TABLE IF NOT EXISTS reservations (order_id text PRIMARY KEY, batch text NOT NULL, item int NOT NULL,
    qty int NOT NULL, state text NOT NULL);
CREATE INDEX IF NOT EXISTS reservations_batch ON reservations (batch);
""",
}
LAST_TABLE = {"orders": "decisions", "payments": "payments_batch", "inventory": "reservations_batch"}
FINAL = ("completed", "compensated", "failed")


class Refused(Exception):
    """A business failure: the balance or the stock is short (`reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Order:
    order_id: str
    batch: str
    account: int
    item: int
    qty: int
    amount: int


def database_dsn(cluster_dsn: str, participant: str) -> str:
    """The participant's own database on its cluster."""
    return make_conninfo(cluster_dsn, dbname=DATABASES[participant])


def create_databases(cluster_dsn: str, participants: tuple[str, ...]) -> None:
    """Create each participant's database on its cluster and its tables (idempotent; several starts at once
    are safe: a concurrent CREATE DATABASE that lost the race is ignored)."""
    with psycopg.connect(cluster_dsn, autocommit=True, connect_timeout=10) as conn:
        for participant in participants:
            name = DATABASES[participant]
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    pass
    for participant in participants:
        with psycopg.connect(database_dsn(cluster_dsn, participant), autocommit=True, connect_timeout=10) as conn:
            # Only when missing: CREATE INDEX IF NOT EXISTS locks its table first, and a transaction a killed
            # coordinator left prepared holds a lock on it until recovery (after this) resolves it.
            if conn.execute("SELECT to_regclass(%s)", (LAST_TABLE[participant],)).fetchone()[0] is None:
                lock = advisory_lock_id("multi_step", f"schema:{participant}")
                conn.execute("SELECT pg_advisory_lock(%s)", (lock,))
                conn.execute(SCHEMAS[participant])
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))


# --- orders -------------------------------------------------------------------------------------------


async def create_order(conn, order: Order, variant: str, status: str = "pending", steps: int = 1) -> bool:
    """False when the order exists already (a retried request or a resumed step)."""
    row = await (await conn.execute(
        "INSERT INTO orders (order_id, batch, variant, account, item, qty, amount, status, steps, finished_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s = 'pending' THEN NULL ELSE clock_timestamp() END) "
        "ON CONFLICT (order_id) DO NOTHING RETURNING 1",
        (order.order_id, order.batch, variant, order.account, order.item, order.qty, order.amount, status, steps,
         status))).fetchone()
    return row is not None


async def finish_order(conn, order_id: str, status: str, steps: int = 0, compensations: int = 0) -> None:
    """Move a pending order to its final state (a finished order stays as it is: idempotent)."""
    await conn.execute(
        "UPDATE orders SET status = %s, steps = steps + %s, compensations = compensations + %s, "
        "finished_at = clock_timestamp() WHERE order_id = %s AND status = 'pending'",
        (status, steps, compensations, order_id))


async def order_status(conn, order_id: str) -> str | None:
    row = await (await conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,))).fetchone()
    return None if row is None else row[0]


# --- payments -----------------------------------------------------------------------------------------


async def charge(conn, order: Order) -> None:
    """Take the amount from the account and record the payment as captured; run in a transaction."""
    new = await (await conn.execute(
        "INSERT INTO payments (order_id, batch, account, amount, state) VALUES (%s, %s, %s, %s, 'captured') "
        "ON CONFLICT (order_id) DO NOTHING RETURNING 1",
        (order.order_id, order.batch, order.account, order.amount))).fetchone()
    if new is None:
        return  # charged before: once
    taken = await (await conn.execute(
        "UPDATE accounts SET balance = balance - %s WHERE batch = %s AND account = %s AND balance >= %s RETURNING 1",
        (order.amount, order.batch, order.account, order.amount))).fetchone()
    if taken is None:
        raise Refused("insufficient_balance")


async def refund(conn, order_id: str) -> bool:
    """Give a captured payment back (compensation); True if this call refunded it. Run in a transaction."""
    row = await (await conn.execute(
        "UPDATE payments SET state = 'refunded' WHERE order_id = %s AND state = 'captured' RETURNING batch, account, "
        "amount", (order_id,))).fetchone()
    if row is None:
        return False
    await conn.execute("UPDATE accounts SET balance = balance + %s WHERE batch = %s AND account = %s",
                       (row[2], row[0], row[1]))
    return True


# --- inventory ----------------------------------------------------------------------------------------


async def reserve(conn, order: Order) -> None:
    """Take qty from the item's stock and record the reservation; run in a transaction."""
    new = await (await conn.execute(
        "INSERT INTO reservations (order_id, batch, item, qty, state) VALUES (%s, %s, %s, %s, 'reserved') "
        "ON CONFLICT (order_id) DO NOTHING RETURNING 1",
        (order.order_id, order.batch, order.item, order.qty))).fetchone()
    if new is None:
        return
    taken = await (await conn.execute(
        "UPDATE stock SET stock = stock - %s WHERE batch = %s AND item = %s AND stock >= %s RETURNING 1",
        (order.qty, order.batch, order.item, order.qty))).fetchone()
    if taken is None:
        raise Refused("out_of_stock")


async def release(conn, order_id: str) -> bool:
    """Put a reservation's stock back (compensation); True if this call released it."""
    row = await (await conn.execute(
        "UPDATE reservations SET state = 'released' WHERE order_id = %s AND state = 'reserved' RETURNING batch, item, "
        "qty", (order_id,))).fetchone()
    if row is None:
        return False
    await conn.execute("UPDATE stock SET stock = stock + %s WHERE batch = %s AND item = %s", (row[2], row[0], row[1]))
    return True


# --- batches ------------------------------------------------------------------------------------------


async def seed_batch(payments, inventory, batch: str, accounts: int, balance: int, items: int, stock: int) -> bool:
    """Accounts 1..n with `balance` and account 0 with none; items 1..n with `stock` and item 0 sold out.
    False when the batch exists (with these or other numbers: the caller compares)."""
    async with payments.connection() as conn, conn.transaction():
        new = await (await conn.execute(
            "INSERT INTO accounts (batch, account, balance) SELECT %s, a, CASE WHEN a = 0 THEN 0 ELSE %s END "
            "FROM generate_series(0, %s) a ON CONFLICT DO NOTHING RETURNING 1", (batch, balance, accounts))).fetchall()
    async with inventory.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO stock (batch, item, stock) SELECT %s, i, CASE WHEN i = 0 THEN 0 ELSE %s END "
            "FROM generate_series(0, %s) i ON CONFLICT DO NOTHING", (batch, stock, items))
    return bool(new)
