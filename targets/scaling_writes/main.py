"""Scaling Writes: an ingest endpoint for click events (a URL shortener's, about 200 bytes each, with a
client-generated id), three ways. Each variant is `POST /<variant>/events`:

  direct    one INSERT and one commit per request; 201 after the commit
  batched   an in-process micro-batcher (store.py): one COPY per N rows or T ms
            (HARNESS_SCALING_WRITES_BATCH_MAX_ROWS / _BATCH_MAX_MS); 201 after the request's own batch
            committed; a failed flush answers 503 to exactly the requests in it
  queued    produced to the Kafka topic with aiokafka, acks=all; 202 after the broker's ack. The embedded
            broker (tansu) refuses idempotent producers (InitProducerId v0), so the producer is NOT
            idempotent: a retried send could append twice, which the consumer's id check absorbs.
            The consumer process (consumer.py, `python -m targets.scaling_writes.consumer`) writes the rows.

A request that could not be made durable (database or broker error, timeout) gets 503, never a 2xx.
Durability of a 2xx: direct and batched, PostgreSQL's commit (fsync on); queued, the broker's log:
on the embedded broker that is memory only (a killed broker loses unconsumed events), on compose's
apache/kafka a single replica on disk.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from targets.common import TargetSettings, Text, create_app, error_responses
from targets.resources import Postgres
from targets.scaling_writes.metrics import PRODUCED, ROWS
from targets.scaling_writes.settings import Settings
from targets.scaling_writes.store import (
    MODULE,
    TOPIC,
    BrokerSettings,
    MicroBatcher,
    Row,
    copy_rows,
    create_schema,
    encode,
    ensure_topic,
    insert_one,
)

VARIANTS = ("direct", "batched", "queued")


class Click(BaseModel):
    id: UUID = Field(description="client-generated; the invariants find the event by it")
    tag: Text = Field(min_length=1, max_length=64, description="the load's run and phase")
    short_code: Text = Field(min_length=1, max_length=16)
    url: Text = Field(min_length=1, max_length=200)
    referrer: Text | None = Field(default=None, max_length=200)
    user_agent: Text = Field(min_length=1, max_length=200)
    clicked_at: float = Field(ge=0, le=1e11, description="epoch seconds on the client")

    def row(self) -> Row:
        return (self.id, self.tag, self.short_code, self.url, self.referrer, self.user_agent, self.clicked_at)


class Accepted(BaseModel):
    id: UUID


class Kafka:
    """The producer as a declared resource: acks=all, no idempotence (the embedded broker refuses it),
    linger 0 (each request sends and waits on its own), bounded request time."""

    name, optional = "kafka", False

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None  # aiokafka needs the running loop: built in open()

    async def open(self) -> None:
        await ensure_topic(self.bootstrap)
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
                                         linger_ms=0, request_timeout_ms=10_000, retry_backoff_ms=100)
        await self.producer.start()

    async def check(self) -> None:
        if not await asyncio.wait_for(self.producer.partitions_for(TOPIC), 2):
            raise ConnectionError(f"topic {TOPIC} has no partitions")

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


def unavailable(what: str, exc: BaseException) -> JSONResponse:
    return JSONResponse({"error": f"{what} unavailable, not stored: {type(exc).__name__}"}, status_code=503)


class Ingest:
    """The three ways to take one event; each answers only once the event is durable where it claims."""

    def __init__(self, pg: Postgres, kafka: Kafka, batcher: MicroBatcher) -> None:
        self.pg, self.kafka, self.batcher = pg, kafka, batcher
        self.direct_rows = ROWS.labels(MODULE, "direct")
        self.produced = PRODUCED.labels(MODULE, "queued")

    async def direct(self, click: Click) -> Response:
        await insert_one(self.pg, click.row())  # database errors: 503 by the app's handlers
        self.direct_rows.inc()
        return JSONResponse({"id": str(click.id)}, status_code=201)

    async def batched(self, click: Click) -> Response:
        try:
            await self.batcher.submit(click.row())
        except Exception as exc:  # this request's batch failed: it was not committed
            return unavailable("database", exc)
        return JSONResponse({"id": str(click.id)}, status_code=201)

    async def queued(self, click: Click) -> Response:
        try:
            await self.kafka.producer.send_and_wait(TOPIC, encode(click.row()), key=click.id.bytes,
                                                    timestamp_ms=int(time.time() * 1000))
        except KafkaError as exc:
            return unavailable("broker", exc)
        self.produced.inc()
        return JSONResponse({"id": str(click.id)}, status_code=202)

    def routes(self) -> list[APIRoute]:
        errors = error_responses(422, 503)
        return [APIRoute("/direct/events", self.direct, methods=["POST"], status_code=201, response_model=Accepted,
                         responses=errors),
                APIRoute("/batched/events", self.batched, methods=["POST"], status_code=201, response_model=Accepted,
                         responses=errors),
                APIRoute("/queued/events", self.queued, methods=["POST"], status_code=202, response_model=Accepted,
                         responses=errors)]


def build(settings: TargetSettings | None = None, writes: Settings | None = None, bootstrap: str | None = None):
    """The app; the arguments replace the env (tests build their own app this way)."""
    settings, writes = settings or TargetSettings(), writes or Settings()
    pg = Postgres(settings.pg_dsn, size=settings.pg_pool_size, cost_of=(MODULE, VARIANTS))
    kafka = Kafka(bootstrap or BrokerSettings().kafka_bootstrap)
    batcher = MicroBatcher(lambda rows: copy_rows(pg, rows), writes.batch_max_rows, writes.batch_max_ms)
    ingest = Ingest(pg, kafka, batcher)

    async def setup() -> None:
        await create_schema(pg)

    return create_app(MODULE, VARIANTS, routes=ingest.routes(), resources=[pg, kafka, batcher], settings=settings,
                      setup=setup)


app = build()
