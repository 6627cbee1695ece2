"""App factory shared by every target: declared routes and resources, /healthz, /metrics, OpenAPI.

A target declares up front what it serves and what it needs (a Starlette-style declarative app):

    create_app("scaling_reads", VARIANTS, routes=[APIRoute(...), admin_route(...)],
               resources=[Postgres(...), Redis(..., optional=True)], settings=settings, setup=seed)

Only the declared resources (`targets/resources.py`) are opened, in order, in the lifespan and
checked by /healthz (an optional one that is down makes the target "degraded", still 200). Handlers
keep references to the resource objects they were built with; `request.app.state.resources[name]`
reaches them too. FastAPI publishes the routes at /openapi.json and validates every request with
pydantic: bad input is a 4xx `{"error": "..."}` with a message, never a 500. A resource adds its own
exception handlers (Postgres: inputs the database rejects are a 422, a database gone a 503).

Each module is a package, `targets/<id>/`: `main.py` builds the app (`targets.<id>:app`), `settings.py`
is its one settings class (HARNESS_<ID>_*, read by the harness's spec too), `metrics.py` its own metrics;
the rest (variants, store, cache, side processes) as the module needs. This file holds only what every
target uses; it imports no store client (a target without PostgreSQL never loads psycopg).

Targets import nothing from `harness` (a target runs alone in compose). Env they read (`HARNESS_*`):
PG_DSN, REDIS_URL, PG_POOL_SIZE, ADMIN_TOKEN (admin routes: `Authorization: Bearer <token>`; 404 when
unset, 401 without the header, 403 with a wrong token), and the test-only failure switch
TARGET_FAIL_VARIANT / TARGET_FAIL_RATIO (that share of the variant's non-admin requests answers 503,
evenly spread: 0.5 fails every second request). Modules read their own `HARNESS_<MODULE>_*`.

Server-side metric names are documented in one place per module: the ones every target emits here,
each module's own in the docstring of its `targets/<id>/metrics.py` (the load side's are in
`harness/loadgen/exporter.py`); every series carries `module` and `variant` labels:

  harness_http_request_duration_seconds  histogram  request latency per variant and endpoint
  harness_http_responses_total           counter    responses per variant, endpoint and status code
  process_cpu_seconds_total              counter    (prometheus-client's process collector)
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, disable_created_metrics, generate_latest
from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from targets.resources import Resource

disable_created_metrics()  # the _created series only add noise to every query

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_LATENCY = Histogram("harness_http_request_duration_seconds", "Request latency seen by the target",
                            ["module", "variant", "endpoint"], buckets=LATENCY_BUCKETS)
RESPONSES = Counter("harness_http_responses", "Responses by status code", ["module", "variant", "endpoint", "status"])
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class TargetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore")

    pg_dsn: str = "postgresql://harness@127.0.0.1:15432/harness"
    pg2_dsn: str = Field(default="postgresql://harness@127.0.0.1:15433/harness", description="a second cluster")
    pg_replica_dsn: str = Field(default="postgresql://harness@127.0.0.1:15434/harness",
                                description="the primary's streaming replica, for targets that read from it")
    redis_url: str = "redis://127.0.0.1:16379/0"
    pg_pool_size: int = Field(default=16, ge=1, le=190)
    admin_token: SecretStr | None = Field(default=None, description="admin routes are off without it")
    target_fail_variant: str | None = Field(default=None, description="test only: this variant fails on purpose")
    target_fail_ratio: float = Field(default=0.0, ge=0, le=1)

    @field_validator("admin_token", "target_fail_variant", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return value or None


def _storable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (PostgreSQL text cannot store them)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


# A string the database can store: use it for every text field of a request body.
Text = Annotated[str, AfterValidator(_storable_text)]


class Error(BaseModel):
    error: str


def error_responses(*codes: int) -> dict:
    """OpenAPI `responses` for routes that answer these error codes with `{"error": ...}`."""
    return {code: {"model": Error} for code in codes}


_bearer = HTTPBearer(auto_error=False, description="the target's HARNESS_ADMIN_TOKEN")


async def require_admin(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    token: SecretStr | None = request.app.state.settings.admin_token
    if token is None:
        raise HTTPException(404, "admin routes are off: the target has no HARNESS_ADMIN_TOKEN")
    if credentials is None:
        raise HTTPException(401, "admin route: send Authorization: Bearer <HARNESS_ADMIN_TOKEN>",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode()):
        raise HTTPException(403, "wrong admin token")


def admin_route(path: str, endpoint: Callable, *, methods: list[str], **kwargs) -> APIRoute:
    """A route that needs the admin token (tagged "admin": the failure switch leaves it alone)."""
    return APIRoute(path, endpoint, methods=methods, dependencies=[Depends(require_admin)], tags=["admin"],
                    responses=error_responses(401, 403, 404), **kwargs)


class InFlight:
    """Requests under `/<variant>/` whose answer has not started yet: work whose outcome is still being
    decided (a retry, a lock wait, a commit). /healthz reports it, so an invariant check waits for it to
    reach 0 before it reads the stores (`harness.loadgen.drained`). A stream counts until its first byte;
    a held long poll until it answers."""

    def __init__(self) -> None:
        self.count = 0


class MetricsMiddleware:
    """Times every request under `/<variant>/` and labels it with the variant and the route template.
    Metric children are bound once per (variant, endpoint, status), not looked up per request."""

    def __init__(self, app, module: str, variants: Sequence[str], in_flight: InFlight | None = None) -> None:
        self.app, self.module, self.variants = app, module, frozenset(variants)
        self.in_flight = in_flight or InFlight()
        self.latency: dict[tuple[str, str], object] = {}
        self.responses: dict[tuple[str, str, int], object] = {}

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        variant = path[1:].partition("/")[0] if path.startswith("/") else ""
        if variant not in self.variants:  # also `OPTIONS *`, /healthz, /metrics, /openapi.json
            return await self.app(scope, receive, send)
        start, status, undecided = time.perf_counter(), 500, True
        self.in_flight.count += 1

        async def send_with_status(message) -> None:
            nonlocal status, undecided
            if message["type"] == "http.response.start":
                status = message["status"]
                if undecided:
                    undecided = False
                    self.in_flight.count -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            if undecided:
                self.in_flight.count -= 1
            self._observe(scope, variant, status, time.perf_counter() - start)

    def _observe(self, scope, variant: str, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = route.path.removeprefix(f"/{variant}") if isinstance(route, APIRoute) else "unmatched"
        method = scope["method"] if scope["method"] in METHODS else "OTHER"  # fuzzers invent methods
        endpoint = f"{method} {template}"
        latency = self.latency.get((variant, endpoint))
        if latency is None:
            latency = self.latency[variant, endpoint] = REQUEST_LATENCY.labels(self.module, variant, endpoint)
        latency.observe(seconds)
        responses = self.responses.get((variant, endpoint, status))
        if responses is None:
            responses = self.responses[variant, endpoint, status] = RESPONSES.labels(
                self.module, variant, endpoint, str(status))
        responses.inc()


class FailureSwitch:
    """Test only: `ratio` of the calls through `wrap`ped routes answer 503, deterministically and evenly
    spread (call n fails when floor(n * ratio) steps up), so a test knows exactly what to expect."""

    def __init__(self, ratio: float) -> None:
        self.ratio, self.calls = ratio, 0

    def fails_next(self) -> bool:
        self.calls += 1
        return int(self.calls * self.ratio) > int((self.calls - 1) * self.ratio)

    def wrap(self, app):
        async def maybe_fail(scope, receive, send) -> None:
            if self.fails_next():
                response = JSONResponse({"error": "failing on purpose (HARNESS_TARGET_FAIL_RATIO)"}, 503)
                return await response(scope, receive, send)
            await app(scope, receive, send)

        return maybe_fail


def _arm_failure_switch(settings: TargetSettings, variants: Sequence[str], routes: Sequence[BaseRoute]) -> None:
    variant = settings.target_fail_variant
    if variant is None or not settings.target_fail_ratio:
        return
    if variant not in variants:
        raise ValueError(f"HARNESS_TARGET_FAIL_VARIANT={variant!r} is not a variant of this target: {list(variants)}")
    switch = FailureSwitch(settings.target_fail_ratio)
    for route in routes:
        if isinstance(route, APIRoute) and route.path.startswith(f"/{variant}/") and "admin" not in route.tags:
            route.app = switch.wrap(route.app)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)


async def healthz(request: Request) -> JSONResponse:
    """200 "ok", or 200 "degraded" when only optional resources are down; 503 when a required one is."""
    state = request.app.state
    in_flight = state.in_flight.count
    if not state.ready:
        return JSONResponse({"status": "starting", "in_flight": in_flight}, status_code=503)
    report, required_ok, optional_ok = {}, True, True
    for resource in state.resources.values():
        try:
            await resource.check()
            report[resource.name] = "ok"
        except Exception as exc:  # any failure is reported with its reason
            report[resource.name] = f"{type(exc).__name__}: {exc}"
            optional_ok, required_ok = (False, required_ok) if resource.optional else (optional_ok, False)
    status = "unhealthy" if not required_ok else ("ok" if optional_ok else "degraded")
    body = {"status": status, "module": state.module, "variants": state.variants, "resources": report,
            "in_flight": in_flight}
    return JSONResponse(body, status_code=200 if required_ok else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _tune_gc() -> None:
    """Once the target is built and its resources are open, move what exists to the permanent
    generation (`gc.freeze`: the collector never scans it again) and collect the young generation
    every 10,000 allocations instead of 700. A request awaiting I/O keeps its objects alive across
    collections, so with CPython's defaults a cache hit spent about a tenth of its CPU in the
    collector; `harness bench` measured 231 -> 197 us per hit with both (README, "Hot paths").
    A target served from another thread lives in someone else's process (a test's): its GC is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def create_app(module: str, variants: Sequence[str], *, routes: Sequence[BaseRoute],
               resources: Sequence[Resource] = (), settings: TargetSettings | None = None,
               setup: Callable[[], Awaitable[None]] | None = None) -> FastAPI:
    """Build a target serving `routes` (each variant under `/<variant>/`) with `resources` opened in the
    lifespan. `setup` runs once they are open, before the app serves (schema, seed data). `settings`
    replaces the env (tests build apps without touching env variables)."""
    settings = settings or TargetSettings()
    _arm_failure_switch(settings, variants, routes)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as opened:
            for resource in resources:
                await resource.open()
                opened.push_async_callback(resource.close)
            if setup is not None:
                await setup()
            _tune_gc()
            app.state.ready = True
            try:
                yield
            finally:
                app.state.ready = False

    common = [APIRoute("/healthz", healthz, methods=["GET"], responses=error_responses(503)),
              APIRoute("/metrics", metrics, methods=["GET"], response_class=Response)]
    handlers = {exc: handler for resource in resources
                for exc, handler in getattr(resource, "exception_handlers", {}).items()}
    app = FastAPI(title=f"{module} target", version="1", routes=[*common, *routes], lifespan=lifespan,
                  exception_handlers={**handlers, HTTPException: _http_error, RequestValidationError: _invalid_request})
    app.state.module, app.state.variants, app.state.settings = module, list(variants), settings
    app.state.resources = {resource.name: resource for resource in resources}
    app.state.ready, app.state.in_flight = False, InFlight()
    app.add_middleware(MetricsMiddleware, module=module, variants=variants, in_flight=app.state.in_flight)
    return app
