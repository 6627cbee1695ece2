"""saga_orchestrated: the order flow as a DBOS workflow (dbos on PyPI, in-process, state in PostgreSQL).

DBOS checkpoints every step's result in its system database (`ms_dbos` on the primary cluster) under the
workflow id, which is the order id: a repeated request joins the same workflow, and a coordinator
killed mid-flow resumes each pending workflow from its last completed step when the next process
launches DBOS. Steps are idempotent on the order id (store.py), so a step that ran but was not
checkpointed before the kill runs again with one effect. A step whose participant is unreachable is
retried (HARNESS_MULTI_STEP_STEP_ATTEMPTS x STEP_RETRY_S); a refusal runs the compensations.
"""

from __future__ import annotations

import asyncio

from dbos import DBOS, SetWorkflowID
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from targets.multi_step import flows, store
from targets.multi_step.settings import Settings
from targets.multi_step.store import Order, Refused

VARIANT = "saga_orchestrated"
STATE: dict = {}  # participants and settings of this process, set by `launch`


_settings = Settings()
RETRY = {"retries_allowed": True, "max_attempts": _settings.step_attempts,
         "interval_seconds": _settings.step_retry_s, "backoff_rate": 1.0}


async def _in(participant: str, work) -> str:
    """Run `work(conn)` in a transaction of the participant; "" or the refusal's reason."""
    async with STATE["participants"].pool(participant).connection() as conn:
        try:
            async with conn.transaction():
                await work(conn)
        except Refused as refused:
            return refused.reason
    return ""


@DBOS.step(name="ms_create_order", **RETRY)
async def create_order(order: dict) -> str:
    return await _in("orders", lambda c: store.create_order(c, Order(**order), VARIANT))


@DBOS.step(name="ms_charge", **RETRY)
async def charge(order: dict) -> str:
    return await _in("payments", lambda c: store.charge(c, Order(**order)))


@DBOS.step(name="ms_reserve", **RETRY)
async def reserve(order: dict) -> str:
    await STATE["participants"].pause()
    return await _in("inventory", lambda c: store.reserve(c, Order(**order)))


@DBOS.step(name="ms_refund", **RETRY)
async def refund(order_id: str) -> str:
    return await _in("payments", lambda c: store.refund(c, order_id))


@DBOS.step(name="ms_finish", **RETRY)
async def finish(order_id: str, status: str, steps: int, compensations: int) -> None:
    await flows.finish(STATE["participants"], VARIANT, order_id, status, steps, compensations)


@DBOS.workflow(name="ms_order_saga")
async def order_saga(order: dict) -> list[str]:
    await create_order(order)
    reason = await charge(order)
    if reason:
        await finish(order["order_id"], "failed", 2, 0)
        return ["failed", reason]
    reason = await reserve(order)
    if reason:
        await refund(order["order_id"])
        await finish(order["order_id"], "compensated", 4, 1)
        return ["compensated", reason]
    await finish(order["order_id"], "completed", 3, 0)
    return ["completed", ""]


class SagaOrchestrated:
    name = VARIANT

    def __init__(self, participants: flows.Participants, answer_within_s: float = 5.0) -> None:
        self.p, self.answer_within_s = participants, answer_within_s

    async def run(self, order: Order) -> tuple[str | None, str]:
        with SetWorkflowID(order.order_id):
            handle = await DBOS.start_workflow_async(order_saga, order.__dict__)
        try:
            status, reason = await asyncio.wait_for(handle.get_result(), self.answer_within_s)
        except TimeoutError:
            return None, "accepted: the saga goes on"
        return status, reason


def system_database_url(cluster_dsn: str) -> str:
    info = conninfo_to_dict(cluster_dsn)
    return URL.create("postgresql+psycopg", username=info.get("user"), password=info.get("password"),
                      host=info.get("host"), port=int(info.get("port", 5432)),
                      database="ms_dbos").render_as_string(hide_password=False)


def launch(participants: flows.Participants, cluster_dsn: str) -> None:
    """Configure DBOS and launch it: this recovers every workflow a killed process left pending."""
    STATE.update(participants=participants)
    DBOS(config={"name": "multi_step", "system_database_url": system_database_url(cluster_dsn),
                 "application_version": "multi_step-1", "log_level": "WARNING", "sys_db_pool_size": 16})
    DBOS.launch()


def destroy() -> None:
    DBOS.destroy(destroy_registry=False)
