"""Scaling Reads: a product page read straight from PostgreSQL, or through a Redis cache.

Variants, each under its own route prefix (classes in variants.py):
  direct                    every read queries PostgreSQL
  cache_aside               Redis first; on a miss, PostgreSQL then SET with a TTL; writes invalidate
  cache_aside_singleflight  cache_aside, plus one recompute per key at a time (in-process futures
                            and a Redis lock across processes); the others wait for it
  cache_aside_lease         cache_aside with leases (Scaling Memcache, NSDI 2013): a miss takes a token
                            (SET lease NX PX), a write deletes the entry and the lease, and the fill is
                            SET only while its token is still the current one (Lua check-and-set)
  replica                   reads from the streaming replica, writes to the primary (replica.py); a read
                            the replica cannot answer in time goes to the primary
  replica_ryw               replica, with read-your-writes: a write answers with the primary's WAL position
                            (cookie `ryw_lsn`, 30 s); the client's reads go to the primary until the
                            replica has replayed it
  denormalized              direct's page, its aggregates (review count, rating sum, histogram) kept in the
                            product row by the review's own transaction instead of computed per read
  http_cache                direct's read with `Cache-Control: public, max-age=HTTP_MAX_AGE_S` and an ETag
                            (a conditional GET that matches is a 304): reached through the stack's shared
                            HTTP cache (nginx, harness/services_http_cache.py), the CDN's stand-in
  noop                      no I/O at all: the floor, to show what the pattern's own code costs

Every read carries the product's "version" (one more on every change of its row); a price change
answers with the version it made, so a client can tell whether a later read shows its own write.

Redis keys (the load side's consistency invariant scans `scaling_reads:<variant>:product:*`):
  scaling_reads:<variant>:product:<id>   the entry: the product JSON (as the read returns it) with
                                         "cached_at", the epoch second the database read behind it began
  scaling_reads:<variant>:lease:<id>     cache_aside_lease's lease token while a miss fills the entry
  scaling_reads:<variant>:lock:<id>      cache_aside_singleflight's recompute lock

Degrade, don't fail: every Redis call has bounded timeouts and goes through a circuit breaker
(targets/resources.py: open after 3 consecutive failures, one probe per second), so a dead Redis
costs a cached read nothing but its PostgreSQL query; each failed or skipped call is counted in
harness_cache_errors_total{op}; and reads recover by themselves when Redis answers again. A write is
answered once it is committed: an invalidation that fails is remembered and retried every 0.25 s
until Redis takes it (cache.py); until then reads of that key bypass the cache and nothing
is cached under it, so the stale entry is never served and is gone within 0.25 s of Redis being
back (or after its TTL if the target died meanwhile).

Settings: HARNESS_SCALING_READS_* (settings.py, the class the harness's spec reads too, with the test-only
MISS_GATE: see store.MissGate), the common ones in targets/common.py. Metrics: metrics.py.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from fastapi import Path, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from targets.common import TargetSettings, Text, admin_route, create_app, error_responses
from targets.resources import Postgres, Redis
from targets.scaling_reads.cache import UNAVAILABLE, Cache
from targets.scaling_reads.replica import RYW_WINDOW_S, Replica, ReplicaReads
from targets.scaling_reads.settings import Settings
from targets.scaling_reads.store import Catalogue, DenormalizedCatalogue, MissGate, seed
from targets.scaling_reads.variants import MODULE, CacheAside, Direct, Lease, Noop, SingleFlight, Variant

VARIANTS = ("direct", "cache_aside", "cache_aside_singleflight", "cache_aside_lease", "replica", "replica_ryw",
            "denormalized", "http_cache", "noop")
CACHED = {"cache_aside": CacheAside, "cache_aside_singleflight": SingleFlight, "cache_aside_lease": Lease}


class NewReview(BaseModel):
    rating: int = Field(ge=1, le=5)
    body: Text = Field(min_length=1, max_length=2000)
    tag: Text | None = Field(default=None, max_length=64)


class NewPrice(BaseModel):
    price_cents: int = Field(ge=0, le=1_000_000_000)


class PriceSet(NewPrice):
    version: int = Field(description="the product's version after this change")


class Product(BaseModel):
    """What a read returns (documentation: the body comes straight from PostgreSQL or the cache)."""

    id: int
    name: str | None = None
    price_cents: int | None = None
    version: int | None = None
    review_count: int | None = None
    cached_at: float | None = Field(default=None, description="cached variants: when the data was read")
    model_config = {"extra": "allow"}


class ReviewId(BaseModel):
    id: int


class Removed(BaseModel):
    removed: int


class Changed(BaseModel):
    changed: int


LSN_PATTERN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
ProductId = Annotated[int, Path(ge=1, le=2**31 - 1, description="1..HARNESS_SCALING_READS_PRODUCTS")]
JSON = "application/json"


class Endpoints:
    """The HTTP face of one variant: checks the id, delegates to the variant, shapes the response."""

    def __init__(self, name: str, variant: Variant, products: int, max_age_s: int = 0) -> None:
        self.name, self.variant, self.products, self.max_age_s = name, variant, products, max_age_s
        self.ryw = name == "replica_ryw"

    def product(self, pid: int) -> int:
        if pid > self.products:
            raise HTTPException(404, f"product_id must be between 1 and {self.products}, got {pid}")
        return pid

    async def get_product(self, product_id: ProductId, request: Request) -> Response:
        pid = self.product(product_id)
        if self.ryw:
            return Response(await self.variant.read(pid, self.after_lsn(request)), media_type=JSON)
        body = await self.variant.read(pid)
        if not self.max_age_s:
            return Response(body, media_type=JSON)
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        headers = {"Cache-Control": f"public, max-age={self.max_age_s}", "ETag": etag}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=JSON, headers=headers)

    @staticmethod
    def after_lsn(request: Request) -> str | None:
        """The WAL position of the client's last write (cookie ryw_lsn), checked."""
        lsn = request.cookies.get("ryw_lsn")
        if lsn is not None and not LSN_PATTERN.fullmatch(lsn):
            raise HTTPException(422, f"cookie ryw_lsn must be a WAL position such as 0/16B3748, got {lsn[:40]!r}")
        return lsn

    def written(self, body: bytes, status_code: int, lsn: str | None) -> Response:
        response = Response(body, status_code=status_code, media_type=JSON)
        if self.ryw and lsn is not None:
            response.set_cookie("ryw_lsn", lsn, max_age=RYW_WINDOW_S, httponly=True, samesite="lax")
        return response

    async def add_review(self, product_id: ProductId, review: NewReview) -> Response:
        review_id, lsn = await self.variant.add_review(self.product(product_id), review.rating, review.body,
                                                       review.tag)
        return self.written(b'{"id": %d}' % review_id, 201, lsn)

    async def set_price(self, product_id: ProductId, price: NewPrice) -> Response:
        version, lsn = await self.variant.set_price(self.product(product_id), price.price_cents)
        return self.written(b'{"price_cents": %d, "version": %d}' % (price.price_cents, version), 200, lsn)

    async def rebuild(self) -> Response:
        changed = await self.variant.db.rebuild()
        return Response(b'{"changed": %d}' % changed, media_type=JSON)

    async def expire(self, product_id: ProductId) -> Response:
        if not await self.variant.expire(self.product(product_id)):
            return JSONResponse({"error": "cache unavailable; the expiry is retried in the background"}, 503)
        return Response(status_code=204)

    async def flush(self) -> Response:
        removed = await self.variant.flush()
        if removed is UNAVAILABLE:
            return JSONResponse({"error": "cache unavailable"}, 503)
        return Response(b'{"removed": %d}' % removed, media_type=JSON)

    def routes(self) -> list[APIRoute]:
        product = f"/{self.name}/products/{{product_id}}"
        routes = [
            APIRoute(product, self.get_product, methods=["GET"], response_model=Product,
                     responses=error_responses(404, 422)),
            APIRoute(f"{product}/reviews", self.add_review, methods=["POST"], status_code=201,
                     response_model=ReviewId, responses=error_responses(404, 422)),
            APIRoute(f"{product}/price", self.set_price, methods=["PUT"], response_model=PriceSet,
                     responses=error_responses(404, 422)),
        ]
        if isinstance(getattr(self.variant, "db", None), DenormalizedCatalogue):
            routes.append(admin_route(f"/{self.name}/aggregates/rebuild", self.rebuild, methods=["POST"],
                                      response_model=Changed))
        if isinstance(self.variant, CacheAside):
            routes += [
                admin_route(f"/{self.name}/cache/expire/{{product_id}}", self.expire, methods=["POST"],
                            status_code=204, response_class=Response),
                admin_route(f"/{self.name}/cache/flush", self.flush, methods=["POST"], response_model=Removed),
            ]
        return routes


def build(settings: TargetSettings | None = None, reads: Settings | None = None):
    """The app; `settings` and `reads` replace the env (tests build their own app this way)."""
    settings, reads = settings or TargetSettings(), reads or Settings()
    pg = Postgres(settings.pg_dsn, size=settings.pg_pool_size)
    redis = Redis(settings.redis_url, optional=True)  # a cache: the target lives without it
    gate = MissGate(settings.redis_url, reads.miss_gate) if reads.miss_gate else None
    replica = Replica(settings.pg_replica_dsn, pg, MODULE, size=settings.pg_pool_size)
    variants: dict[str, Variant] = {
        "noop": Noop(), "direct": Direct(Catalogue(pg, MODULE, "direct")),
        "replica": ReplicaReads(Catalogue(pg, MODULE, "replica"), replica, MODULE, "replica"),
        "replica_ryw": ReplicaReads(Catalogue(pg, MODULE, "replica_ryw", track_lsn=True), replica, MODULE,
                                    "replica_ryw"),
        "denormalized": Direct(DenormalizedCatalogue(pg, MODULE, "denormalized")),
        "http_cache": Direct(Catalogue(pg, MODULE, "http_cache"))}
    for name, strategy in CACHED.items():
        cache = Cache(redis, MODULE, name, reads.cache_ttl_s)
        variants[name] = strategy(Catalogue(pg, MODULE, name, gate), cache, name)
    routes = [route for name in VARIANTS for route in Endpoints(
        name, variants[name], reads.products, reads.http_max_age_s if name == "http_cache" else 0).routes()]
    routes.sort(key=lambda route: route.methods != {"GET"})  # routing scans the list: every variant's read first

    async def setup() -> None:
        await seed(pg, reads.products, reads.reviews)

    resources = [pg, replica, redis, *([gate] if gate else [])]
    return create_app(MODULE, VARIANTS, routes=routes, resources=resources, settings=settings, setup=setup)


app = build()
