"""App factory shared by every target: /healthz, /metrics, lifespan-managed pools, shared metrics.

Targets import nothing from `harness` (a target runs alone in compose), so their settings are read
here from the same `HARNESS_*` env variables the harness passes them.

Server-side metric names, the one place they are defined (the load side's are in
`harness/loadgen/exporter.py`); every series carries `module` and `variant` labels:

  harness_http_request_duration_seconds  histogram  request latency per variant and endpoint
  harness_http_responses_total           counter    responses per variant, endpoint and status code
  harness_cache_lookups_total            counter    result = hit | miss | coalesced
  harness_cache_invalidations_total      counter    reason = write | expire | flush
  harness_db_queries_total               counter    kind = read | write
  process_cpu_seconds_total              counter    (prometheus-client's process collector)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

M = TypeVar("M", bound=BaseModel)

disable_created_metrics()  # the _created series only add noise to every query

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

REQUEST_LATENCY = Histogram(
    "harness_http_request_duration_seconds",
    "Request latency seen by the target",
    ["module", "variant", "endpoint"],
    buckets=LATENCY_BUCKETS,
)
RESPONSES = Counter(
    "harness_http_responses", "Responses by status code", ["module", "variant", "endpoint", "status"]
)
CACHE_LOOKUPS = Counter("harness_cache_lookups", "Cache lookups by result", ["module", "variant", "result"])
CACHE_INVALIDATIONS = Counter(
    "harness_cache_invalidations", "Cache keys removed", ["module", "variant", "reason"]
)
DB_QUERIES = Counter("harness_db_queries", "Database statements executed", ["module", "variant", "kind"])


class TargetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore")

    pg_dsn: str = "postgresql://harness@127.0.0.1:15432/harness"
    redis_url: str = "redis://127.0.0.1:16379/0"
    pg_pool_size: int = Field(default=16, ge=1, le=190)
    cache_ttl_s: int = Field(default=300, ge=1)
    products: int = Field(default=100_000, ge=100)
    reviews: int = Field(default=1_000_000, ge=100)


@dataclass
class Resources:
    """What a target's handlers use: settings, the PostgreSQL pool and the Redis client."""

    module: str
    settings: TargetSettings
    pg: AsyncConnectionPool
    redis: aioredis.Redis

    def db_query(self, variant: str, kind: str) -> None:
        DB_QUERIES.labels(self.module, variant, kind).inc()


def bad_request(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def int_param(request: Request, name: str, low: int, high: int) -> int:
    raw = request.path_params.get(name, request.query_params.get(name))
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, got {value}", status=404)
    return value


async def json_body(request: Request, model: type[M]) -> M:
    body = await request.body()
    try:
        return model.model_validate_json(body or b"null")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise bad_request(f"invalid body: {problems}", status=422) from None


def json_bytes(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type="application/json")


class MetricsMiddleware:
    """Times every request and labels it with the variant (first path segment) and route template."""

    def __init__(self, app, module: str, variants: Sequence[str]) -> None:
        self.app, self.module, self.variants = app, module, set(variants)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_with_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            variant = scope["path"].split("/", 2)[1]
            if variant in self.variants:
                route = scope.get("route")
                template = route.path.removeprefix(f"/{variant}") if route else "unmatched"
                endpoint = f"{scope['method']} {template}"
                REQUEST_LATENCY.labels(self.module, variant, endpoint).observe(time.perf_counter() - start)
                RESPONSES.labels(self.module, variant, endpoint, str(status)).inc()


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


MAX_STALL_S = 5.0


async def _stall(request: Request) -> Response:
    """Freeze the whole server (the event loop) for a few seconds, like a long GC pause or a CPU-bound
    handler: the coordinated-omission demo. Bounded, and the server only listens on loopback."""
    raw = request.query_params.get("seconds", "")
    try:
        seconds = float(raw)
    except ValueError:
        raise bad_request(f"seconds must be a number, got {raw!r}") from None
    if not 0 < seconds <= MAX_STALL_S:
        raise bad_request(f"seconds must be in (0, {MAX_STALL_S:g}], got {seconds:g}")
    time.sleep(seconds)  # blocking on purpose: nothing else is served meanwhile
    return JSONResponse({"stalled_s": seconds})


def create_app(
    module: str,
    variants: Sequence[str],
    routes: Callable[[Resources], list[BaseRoute]],
    *,
    setup: Callable[[Resources], Awaitable[None]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Starlette:
    """Build a target: `routes(resources)` gives the module's routes once the pools are open.

    `setup` runs in the lifespan before the app serves (schema, seed data). `overrides` replace
    settings, so tests build apps without touching env variables.
    """
    settings = TargetSettings(**(overrides or {}))
    state: dict[str, Resources] = {}

    async def healthz(request: Request) -> Response:
        resources = state.get("resources")
        if resources is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            async with resources.pg.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            await resources.redis.ping()
        except Exception as exc:  # any store failure makes the target unhealthy, with the reason
            return JSONResponse({"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}, 503)
        return JSONResponse({"status": "ok", "module": module, "variants": list(variants)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pg = AsyncConnectionPool(
            settings.pg_dsn,
            min_size=min(4, settings.pg_pool_size),
            max_size=settings.pg_pool_size,
            open=False,
            kwargs={"autocommit": True},
        )
        await pg.open(wait=True, timeout=30)
        client = aioredis.Redis.from_url(settings.redis_url, max_connections=256)
        resources = Resources(module, settings, pg, client)
        try:
            if setup is not None:
                await setup(resources)
            app.router.routes.extend(routes(resources))
            state["resources"] = resources
            yield
        finally:
            state.clear()
            await client.aclose()
            await pg.close()

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", _metrics),
                Route("/debug/stall", _stall, methods=["POST"])],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.add_middleware(MetricsMiddleware, module=module, variants=variants)
    return app
