"""Multi-step Processes: an order across three participants (orders, payments, inventory), each with its
own database, inventory on a second PostgreSQL cluster. One route prefix per variant (flows.py, saga.py):

  POST /<variant>/batches          a batch of accounts and items (one per phase of the workload)
  POST /<variant>/orders           run one order to its final state; answers
                                     200 {"status": "completed"}
                                     409 {"status": "compensated" | "failed", "reason": ...}  a business refusal
                                     202 {"status": "pending"}  accepted, not final yet (it converges later)
                                     503 a participant or the coordinator's log is unreachable

Knobs (PUT /admin/knobs): `step_delay_ms` widens the window between steps (two_phase: between PREPARE and
the decision), so a fault lands mid-flow. Settings: HARNESS_MULTI_STEP_* (settings.py). Metrics:
metrics.py. Env: HARNESS_PG_DSN (orders, payments, the saga's state), HARNESS_PG2_DSN (inventory).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

from fastapi.routing import APIRoute
from psycopg.conninfo import make_conninfo
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from targets.common import TargetSettings, Text, create_app, error_responses
from targets.knobs import KnobRoutes
from targets.multi_step import flows, saga, store
from targets.multi_step.metrics import MODULE, ORDER_SECONDS, ORDERS, zero_series
from targets.multi_step.settings import Settings
from targets.resources import Postgres

VARIANTS = ("naive", "two_phase", "saga_orchestrated")
Name = Annotated[Text, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$")]


class NewBatch(BaseModel):
    name: Name
    accounts: int = Field(ge=1, le=100_000)
    balance: int = Field(ge=0, le=10**12)
    items: int = Field(ge=1, le=100_000)
    stock: int = Field(ge=0, le=10**9)


class OrderRequest(BaseModel):
    order_id: Name
    batch: Name
    account: int = Field(ge=0, le=100_000, description="0 has no money: the charge is refused")
    item: int = Field(ge=0, le=100_000, description="0 is sold out: the reservation is refused")
    qty: int = Field(ge=1, le=1000)
    amount: int = Field(ge=1, le=10**9)


class Answer(BaseModel):
    order_id: str
    status: str
    reason: str = ""


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_delay_ms: int = Field(default=0, ge=0, le=10_000, description="a pause between steps (two_phase: "
                               "between PREPARE and the decision), so a fault lands mid-flow")


class Endpoints:
    def __init__(self, flow, participants: flows.Participants) -> None:
        self.flow, self.p, self.name = flow, participants, flow.name

    async def create_batch(self, batch: NewBatch) -> NewBatch:
        await store.seed_batch(self.p.pool("payments"), self.p.pool("inventory"), batch.name, batch.accounts,
                               batch.balance, batch.items, batch.stock)
        return batch

    async def order(self, body: OrderRequest):
        if body.account > 0 and body.item > 0 and not await self._known_batch(body.batch):
            raise HTTPException(404, f"no batch {body.batch!r}: POST /{self.name}/batches first")
        start = time.perf_counter()
        status, reason = await self.flow.run(store.Order(**body.model_dump()))
        if status is None:
            ORDERS.labels(MODULE, self.name, "unfinished").inc()
            return JSONResponse(Answer(order_id=body.order_id, status="pending", reason=reason).model_dump(), 202)
        ORDER_SECONDS.labels(MODULE, self.name).observe(flows.elapsed_since(start))
        answer = Answer(order_id=body.order_id, status=status, reason=reason).model_dump()
        return JSONResponse(answer, 200 if status == "completed" else 409)

    async def _known_batch(self, batch: str) -> bool:
        async with self.p.pool("payments").connection() as conn:
            row = await (await conn.execute("SELECT 1 FROM accounts WHERE batch = %s LIMIT 1", (batch,))).fetchone()
        return row is not None

    def routes(self) -> list[APIRoute]:
        base = f"/{self.name}"
        return [APIRoute(f"{base}/batches", self.create_batch, methods=["POST"], status_code=201,
                         response_model=NewBatch, responses=error_responses(422, 503)),
                APIRoute(f"{base}/orders", self.order, methods=["POST"], response_model=Answer,
                         responses={**error_responses(404, 422, 503), 202: {"model": Answer}, 409: {"model": Answer}})]


class Databases:
    """Creates the participants' databases before their pools open (a resource opened first)."""

    name, optional = "databases", False

    def __init__(self, primary: str, second: str) -> None:
        self.primary, self.second = primary, second

    async def open(self) -> None:
        await asyncio.to_thread(store.create_databases, self.primary, ("orders", "payments"))
        await asyncio.to_thread(store.create_databases, self.second, ("inventory",))
        await asyncio.to_thread(_create_dbos_database, self.primary)

    async def check(self) -> None:
        """The pools check the databases themselves."""

    async def close(self) -> None:
        """Nothing held."""


def _create_dbos_database(primary: str) -> None:
    import psycopg

    with psycopg.connect(primary, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'ms_dbos'").fetchone() is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute("CREATE DATABASE ms_dbos")


def _pool(cluster_dsn: str, participant: str, lock_timeout_ms: int, size: int) -> Postgres:
    dsn = make_conninfo(store.database_dsn(cluster_dsn, participant), options=f"-c lock_timeout={lock_timeout_ms}")
    pg = Postgres(dsn, size=size)
    pg.name = participant
    return pg


def build(settings: TargetSettings | None = None, knobs: Settings | None = None):
    """The app; `settings` and `knobs` replace the env (tests build their own app this way)."""
    settings, knobs = settings or TargetSettings(), knobs or Settings()
    pools = {x: _pool(settings.pg2_dsn if x == "inventory" else settings.pg_dsn, x, knobs.lock_timeout_ms,
                      knobs.pool_size) for x in store.DATABASES}
    participants = flows.Participants(**pools)
    in_doubt = flows.InDoubt(participants, knobs.in_doubt_after_s)
    variants = [flows.Naive(participants), flows.TwoPhase(participants), saga.SagaOrchestrated(participants)]
    routes = [route for flow in variants for route in Endpoints(flow, participants).routes()]
    routes += KnobRoutes(Knobs, lambda k: setattr(participants, "delay_s", k.step_delay_ms / 1000)).routes()
    zero_series(VARIANTS)
    tasks: list[asyncio.Task] = []

    async def setup() -> None:
        await in_doubt.resolve(startup=True)  # what a killed coordinator left prepared
        await asyncio.to_thread(saga.launch, participants, settings.pg_dsn)  # resumes pending sagas
        tasks.append(asyncio.create_task(in_doubt.loop(knobs.recovery_interval_s)))

    app = create_app(MODULE, VARIANTS, routes=routes, settings=settings, setup=setup,
                     resources=[Databases(settings.pg_dsn, settings.pg2_dsn), *pools.values()])
    app.state.participants, app.state.in_doubt = participants, in_doubt
    return app


app = build()
