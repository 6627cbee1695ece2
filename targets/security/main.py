"""Security & Access's target: who is calling (four ways), what they may do (two roles), how often (three
limiters). Built by the common factory; one route prefix per variant.

Authentication variants (auth.py), each with the same routes:
  POST /<v>/login   {"user", "password", "ttl_s"?} -> {"token"} (session: also the `sid` cookie); `admin` is
                    the one admin, every other user name is a plain user
  GET  /<v>/resource  any logged-in user; 401 without a valid credential
  GET  /<v>/admin     admins only: 403 for a user (RBAC)
  POST /<v>/logout    session and jwt_revocable revoke at once; plain JWT cannot ({"revoked": false})
  GET  /jwt_eddsa/public_key  the EdDSA public key (public by design; the algorithm-confusion attack uses it)
Credentials: the `sid` cookie (session) or `Authorization: Bearer <token>` (JWT variants).

Rate-limiting variants (limiters.py): GET /<v>/resource with `X-API-Key: <key>`, limited per key (Locust sends
every user from one address). 429 with Retry-After when over the limit; when Redis is down, the setting
on_store_error decides: closed -> 503, open -> 200 with `X-RateLimit-Degraded: store-unavailable`.
Settings: HARNESS_SECURITY_* (settings.py). Metrics: metrics.py.
"""

from __future__ import annotations

import hmac
import math
import time
from typing import Annotated

from fastapi import Cookie, Depends, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits.errors import StorageError
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from targets.common import TargetSettings, create_app, error_responses
from targets.resources import Redis
from targets.security.auth import Identity, Refused, Sessions, Tokens
from targets.security.limiters import TokenBucket, WindowLimiter, storage_for
from targets.security.metrics import (
    AUTH_CHECKS,
    AUTH_US,
    DECISIONS,
    MODULE,
    VERIFY_CPU,
    PeakWindow,
    client_class,
    declare_decisions,
    register_uptime,
)
from targets.security.settings import Settings

AUTH_VARIANTS = ("session", "jwt", "jwt_eddsa", "jwt_revocable")
LIMIT_VARIANTS = ("fixed_window", "sliding_window", "token_bucket")
VARIANTS = AUTH_VARIANTS + LIMIT_VARIANTS
STORE_DOWN = (RedisError, StorageError, OSError, TimeoutError)
UserName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
ApiKey = Annotated[str, Header(alias="X-API-Key", pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")]
_bearer = HTTPBearer(auto_error=False, description="a token from POST /<variant>/login")
Sid = Annotated[str | None, Cookie(alias="sid", max_length=4096)]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: UserName
    password: str = Field(max_length=200)
    ttl_s: int | None = Field(default=None, ge=1, le=86_400, description="a shorter lifetime than the default")


def _refused(reason: str, status: int = 401) -> HTTPException:
    return HTTPException(status, reason, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def auth_routes(variant: str, scheme: Sessions | Tokens, settings: Settings) -> list[APIRoute]:
    cookie = variant == "session"

    def credential(sid: str | None, bearer: HTTPAuthorizationCredentials | None) -> str:
        value = sid if cookie else (bearer.credentials if bearer else None)
        if not value or len(value) > 4096:
            raise _refused("send the `sid` cookie from login" if cookie else "send Authorization: Bearer <token>")
        return value

    async def identify(sid: str | None, bearer: HTTPAuthorizationCredentials | None) -> Identity:
        value = credential(sid, bearer)
        started = time.perf_counter()
        try:
            identity = await scheme.check(value)
            outcome = "accepted"
        except Refused as exc:
            outcome, identity = "refused", exc
        except STORE_DOWN as exc:
            raise HTTPException(503, f"credential store unavailable: {type(exc).__name__}") from None
        finally:
            AUTH_US.labels(MODULE, variant).inc((time.perf_counter() - started) * 1e6)
        AUTH_CHECKS.labels(MODULE, variant, outcome).inc()
        if isinstance(identity, Refused):
            raise _refused(str(identity))
        return identity

    async def login(body: Login) -> JSONResponse:
        if not hmac.compare_digest(body.password.encode(), settings.password.get_secret_value().encode()):
            raise _refused("wrong user or password")
        identity = Identity(body.user, "admin" if body.user == "admin" else "user")
        ttl = min(body.ttl_s or settings.token_ttl_s, settings.token_ttl_s)
        try:
            token = await scheme.login(identity, ttl)
        except STORE_DOWN as exc:
            raise HTTPException(503, f"credential store unavailable: {type(exc).__name__}") from None
        response = JSONResponse({"token": token, "role": identity.role, "ttl_s": ttl})
        if cookie:
            response.set_cookie("sid", token, max_age=ttl, httponly=True, samesite="strict")
        return response

    async def resource(sid: Sid = None, bearer: Bearer = None) -> dict:
        identity = await identify(sid, bearer)
        return {"user": identity.user, "role": identity.role}

    async def admin(sid: Sid = None, bearer: Bearer = None) -> dict:
        identity = await identify(sid, bearer)
        if identity.role != "admin":
            raise _refused(f"role {identity.role} may not call an admin route", 403)
        return {"user": identity.user, "admin": True}

    async def logout(sid: Sid = None, bearer: Bearer = None) -> dict:
        value = credential(sid, bearer)
        try:
            revoked = await scheme.logout(value)
        except Refused as exc:
            raise _refused(str(exc)) from None
        except STORE_DOWN as exc:
            raise HTTPException(503, f"credential store unavailable: {type(exc).__name__}") from None
        return {"revoked": revoked,
                "note": "" if revoked or cookie else "a plain JWT cannot be revoked: it is accepted until it expires"}

    errors = error_responses(401, 403, 422, 503)
    routes = [APIRoute(f"/{variant}/login", login, methods=["POST"], responses=errors),
              APIRoute(f"/{variant}/resource", resource, methods=["GET"], responses=errors),
              APIRoute(f"/{variant}/admin", admin, methods=["GET"], responses=errors),
              APIRoute(f"/{variant}/logout", logout, methods=["POST"], responses=errors)]
    if isinstance(scheme, Tokens) and scheme.public_pem:
        async def public_key() -> PlainTextResponse:
            return PlainTextResponse(scheme.public_pem.decode())

        routes.append(APIRoute(f"/{variant}/public_key", public_key, methods=["GET"], response_class=PlainTextResponse))
    return routes


def limit_route(variant: str, limiter, settings: Settings, peaks: PeakWindow) -> APIRoute:
    async def resource(request: Request, key: ApiKey) -> JSONResponse:
        client = client_class(key)
        try:
            decision = await limiter.hit(key)
        except STORE_DOWN as exc:
            if settings.on_store_error == "closed":
                DECISIONS.labels(MODULE, variant, client, "store_error_refused").inc()
                return JSONResponse({"error": f"rate limiter store unavailable ({type(exc).__name__}): refused, "
                                     "the limiter fails closed"}, status_code=503, headers={"Retry-After": "1"})
            DECISIONS.labels(MODULE, variant, client, "store_error_admitted").inc()
            return JSONResponse({"key": key, "limited": False}, headers={"X-RateLimit-Degraded": "store-unavailable"})
        if not decision.admitted:
            DECISIONS.labels(MODULE, variant, client, "refused").inc()
            retry_after = str(max(1, math.ceil(decision.retry_after_s)))
            return JSONResponse({"error": f"rate limit: {settings.limit} requests per {settings.window_s} s per key"},
                                status_code=429, headers={"Retry-After": retry_after})
        DECISIONS.labels(MODULE, variant, client, "admitted").inc()
        if client == "edge":
            peaks.admitted(variant, key)
        return JSONResponse({"key": key, "limited": True})

    return APIRoute(f"/{variant}/resource", resource, methods=["GET"], responses=error_responses(422, 429, 503))


def build(settings: Settings | None = None, target: TargetSettings | None = None):
    settings, target = settings or Settings(), target or TargetSettings()
    redis = Redis(target.redis_url)
    schemes = {"session": Sessions(redis.client), "jwt": Tokens("HS256", on_verify=VERIFY_CPU.record("jwt")),
               "jwt_eddsa": Tokens("EdDSA", on_verify=VERIFY_CPU.record("jwt_eddsa")),
               "jwt_revocable": Tokens("HS256", redis.client, on_verify=VERIFY_CPU.record("jwt_revocable"))}
    storage = storage_for(target.redis_url)
    limiters = {"fixed_window": WindowLimiter("fixed_window", storage, settings.limit, settings.window_s),
                "sliding_window": WindowLimiter("sliding_window", storage, settings.limit, settings.window_s),
                "token_bucket": TokenBucket(redis.client, settings.limit, settings.window_s)}
    peaks = PeakWindow(settings.window_s, settings.limit)
    routes = [route for v in AUTH_VARIANTS for route in auth_routes(v, schemes[v], settings)]
    routes += [limit_route(v, limiters[v], settings, peaks) for v in LIMIT_VARIANTS]
    register_uptime(VARIANTS)
    declare_decisions(LIMIT_VARIANTS)
    return create_app(MODULE, VARIANTS, routes=routes, resources=[redis], settings=target)


app = build()
