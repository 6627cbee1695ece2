"""The order flow four ways. Each flow takes an `Order` and returns its final status ("completed",
"compensated", "failed") with a reason, or None when the order is accepted but not final yet.

  naive              create the order, charge, reserve, complete: each step its own transaction, no
                     compensation (a refusal at step 3 leaves the charge of step 2 in place)
  two_phase          one transaction per participant, all PREPAREd, the decision logged, then COMMIT PREPARED;
                     `InDoubt` resolves what a dead coordinator left prepared (presumed abort)
  saga_orchestrated  a DBOS workflow (saga.py): each step durable, compensations on a refusal

`Participants` holds a pool per participant database. `delay_s` (a knob) widens the window between the
steps (two_phase: between PREPARE and the decision), so a fault lands mid-flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from psycopg import sql

from targets.multi_step import store
from targets.multi_step.metrics import COMPENSATIONS, IN_DOUBT, MODULE, ORDERS, STEPS
from targets.multi_step.store import Order, Refused

log = logging.getLogger("multi_step")


class Participants:
    """One pool per participant database (targets.resources.Postgres, named after the participant)."""

    def __init__(self, orders, payments, inventory) -> None:
        self.orders, self.payments, self.inventory = orders, payments, inventory
        self.delay_s = 0.0

    def pool(self, name: str):
        return getattr(self, name).pool

    async def pause(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)


def finished(variant: str, status: str, steps: int, compensations: int = 0) -> None:
    ORDERS.labels(MODULE, variant, status).inc()
    STEPS.labels(MODULE, variant).inc(steps)
    if compensations:
        COMPENSATIONS.labels(MODULE, variant).inc(compensations)


async def finish(p: Participants, variant: str, order_id: str, status: str, steps: int, compensations: int = 0):
    async with p.pool("orders").connection() as conn:
        await store.finish_order(conn, order_id, status, steps, compensations)
    finished(variant, status, steps + 1, compensations)


class Naive:
    name = "naive"

    def __init__(self, participants: Participants) -> None:
        self.p = participants

    async def run(self, order: Order) -> tuple[str | None, str]:
        p = self.p
        async with p.pool("orders").connection() as conn:
            if not await store.create_order(conn, order, self.name):
                return await _known(p, order.order_id)
        try:
            async with p.pool("payments").connection() as conn, conn.transaction():
                await store.charge(conn, order)
            await p.pause()
            async with p.pool("inventory").connection() as conn, conn.transaction():
                await store.reserve(conn, order)
        except Refused as refused:  # no compensation: a refused reservation leaves the charge in place
            await finish(p, self.name, order.order_id, "failed", 2)
            return "failed", refused.reason
        await finish(p, self.name, order.order_id, "completed", 3)
        return "completed", ""


async def _known(p: Participants, order_id: str) -> tuple[str | None, str]:
    async with p.pool("orders").connection() as conn:
        status = await store.order_status(conn, order_id)
    return (status if status in store.FINAL else None), "a repeated order id: its state"


def gid(variant: str, order_id: str, participant: str) -> str:
    return f"ms:{variant}:{participant}:{order_id}"


def parse_gid(text: str) -> tuple[str, str, str]:
    _, variant, participant, order_id = text.split(":", 3)
    return variant, participant, order_id


async def _decide(conn, order_id: str, decision: str) -> str:
    """The one decision for the order: the first written wins (the coordinator's commit, or recovery's
    presumed abort)."""
    await conn.execute("INSERT INTO decisions (order_id, decision) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       (order_id, decision))
    row = await (await conn.execute("SELECT decision FROM decisions WHERE order_id = %s", (order_id,))).fetchone()
    return row[0]


async def _finish_prepared(conn, name: str, decision: str) -> bool:
    """COMMIT or ROLLBACK PREPARED; False when it is gone already (resolved by someone else)."""
    verb = "COMMIT PREPARED {}" if decision == "commit" else "ROLLBACK PREPARED {}"
    try:
        await conn.execute(sql.SQL(verb).format(sql.Literal(name)))
    except psycopg.errors.UndefinedObject:
        return False
    return True


class TwoPhase:
    name = "two_phase"
    PARTICIPANTS = ("orders", "payments", "inventory")

    def __init__(self, participants: Participants) -> None:
        self.p = participants

    async def run(self, order: Order) -> tuple[str | None, str]:
        p, names = self.p, {x: gid(self.name, order.order_id, x) for x in self.PARTICIPANTS}
        async def create(conn) -> None:
            if not await store.create_order(conn, order, self.name, "completed", 4):
                raise Refused("repeated_order_id")

        work = {"orders": create,
                "payments": lambda c: store.charge(c, order), "inventory": lambda c: store.reserve(c, order)}
        async with contextlib.AsyncExitStack() as stack:
            conns = {x: await stack.enter_async_context(p.pool(x).connection()) for x in self.PARTICIPANTS}
            prepared: list[str] = []
            try:
                for x in self.PARTICIPANTS:  # phase one: every participant does its work and votes
                    await conns[x].execute("BEGIN")
                    await work[x](conns[x])
                for x in self.PARTICIPANTS:
                    await conns[x].execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(names[x])))
                    prepared.append(x)
            except BaseException as exc:
                await self._abort(conns, names, prepared)
                if isinstance(exc, Refused):
                    async with p.pool("orders").connection() as conn:
                        await store.create_order(conn, order, self.name, "failed", 2)
                    finished(self.name, "failed", 2)
                    return "failed", exc.reason
                raise
            await p.pause()  # the blocking window: prepared, locks held, no decision yet
            decision = await _decide(conns["orders"], order.order_id, "commit")
            for x in self.PARTICIPANTS:  # phase two; a participant unreachable now is resolved by InDoubt
                await _finish_prepared(conns[x], names[x], decision)
        if decision != "commit":
            return None, "rolled back by recovery"
        finished(self.name, "completed", 4)
        return "completed", ""

    @staticmethod
    async def _abort(conns, names, prepared) -> None:
        for x, conn in conns.items():
            with contextlib.suppress(psycopg.Error):
                if x in prepared:
                    await _finish_prepared(conn, names[x], "rollback")
                else:
                    await conn.execute("ROLLBACK")


class InDoubt:
    """Resolve prepared transactions no live coordinator call will finish: at start-up every one of this
    module's (the process that prepared them is gone), later those older than `after_s`. The decision
    log says commit or nothing (presumed abort: recovery writes rollback first, so a late coordinator
    cannot commit what recovery rolled back)."""

    def __init__(self, participants: Participants, after_s: float) -> None:
        self.p, self.after_s = participants, after_s

    async def resolve(self, startup: bool = False) -> int:
        found = 0
        for participant in TwoPhase.PARTICIPANTS:
            pool = self.p.pool(participant)
            database = store.DATABASES[participant]
            async with pool.connection() as conn:
                rows = await (await conn.execute(
                    "SELECT gid FROM pg_prepared_xacts WHERE database = %s AND gid LIKE %s "
                    "AND (%s OR prepared < now() - make_interval(secs => %s))",
                    (database, f"ms:%:{participant}:%", startup, self.after_s))).fetchall()
                for (name,) in rows:
                    variant, _, order_id = parse_gid(name)
                    async with self.p.pool("orders").connection() as log_conn:
                        decision = await _decide(log_conn, order_id, "rollback")
                    if await _finish_prepared(conn, name, decision):
                        found += 1
                        IN_DOUBT.labels(MODULE, variant, decision).inc()
                        log.warning("in-doubt %s resolved: %s", name, decision)
        return found

    async def loop(self, interval_s: float) -> None:
        for _ in range(10**9):  # bounded: about 60 years at one pass a second
            await asyncio.sleep(interval_s)
            try:
                await self.resolve()
            except (psycopg.Error, OSError) as exc:  # a participant down: next pass
                log.warning("in-doubt pass failed: %s", exc)


def elapsed_since(start: float) -> float:
    return time.perf_counter() - start
