"""Who is calling: four ways to know, each a small class with `login`, `check` and `logout`.

  session        an opaque 256-bit id in a cookie, looked up in Redis on every request (security:session:<id>)
  jwt            HS256, verified locally with a key loaded once; logout cannot revoke it (it lives until exp)
  jwt_eddsa      the same with EdDSA (Ed25519): a public key verifies, only the target's private key signs
  jwt_revocable  HS256 plus a denylist of revoked token ids in Redis (security:revoked:<jti>), checked every time

Each JWT variant decodes with exactly one algorithm and requires exp, sub, role and jti: `alg: none`, an
HS256 token signed with the EdDSA public key (algorithm confusion), a bad signature or an expired token are
refused (`Refused`, a 401). Keys are made at start, once: signing per login, never per request.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

ROLES = ("user", "admin")
REQUIRED = ["exp", "sub", "role", "jti"]


class Refused(Exception):
    """The credential is not accepted (a 401), with the reason said to the client."""


@dataclass(frozen=True)
class Identity:
    user: str
    role: str


class Sessions:
    """Server-side sessions: the id is a random 256-bit token; the user lives in Redis with a TTL."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def login(self, identity: Identity, ttl_s: int) -> str:
        sid = secrets.token_urlsafe(32)
        await self.redis.set(f"security:session:{sid}", f"{identity.user}:{identity.role}", ex=ttl_s)
        return sid

    async def check(self, sid: str) -> Identity:
        value = await self.redis.get(f"security:session:{sid}")
        if value is None:
            raise Refused("unknown or expired session")
        user, _, role = value.decode().rpartition(":")
        return Identity(user, role)

    async def logout(self, sid: str) -> bool:
        return bool(await self.redis.delete(f"security:session:{sid}"))


class Tokens:
    """Signed tokens verified locally, with one algorithm and its key; optionally a Redis denylist."""

    def __init__(self, algorithm: str, redis: Redis | None = None,
                 on_verify: Callable[[float], None] = lambda cpu_us: None) -> None:
        self.algorithm, self.redis, self.on_verify = algorithm, redis, on_verify
        if algorithm == "HS256":
            self.signing_key = self.verifying_key = secrets.token_bytes(32)
            self.public_pem = b""
        elif algorithm == "EdDSA":
            private = Ed25519PrivateKey.generate()
            self.signing_key, self.verifying_key = private, private.public_key()
            self.public_pem = self.verifying_key.public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            raise ValueError(f"algorithm must be HS256 or EdDSA, got {algorithm!r}")

    @property
    def revocable(self) -> bool:
        return self.redis is not None

    async def login(self, identity: Identity, ttl_s: int) -> str:
        claims = {"sub": identity.user, "role": identity.role, "jti": uuid.uuid4().hex,
                  "exp": int(time.time()) + ttl_s}
        return jwt.encode(claims, self.signing_key, algorithm=self.algorithm)

    def decode(self, token: str) -> dict:
        try:
            return jwt.decode(token, self.verifying_key, algorithms=[self.algorithm],
                              options={"require": REQUIRED})
        except jwt.ExpiredSignatureError:
            raise Refused("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Refused(f"invalid token: {exc}") from None

    async def check(self, token: str) -> Identity:
        started = time.thread_time_ns()  # CPU of this thread: exact, since decoding never awaits
        try:
            claims = self.decode(token)
        finally:
            self.on_verify((time.thread_time_ns() - started) / 1000)
        if claims["role"] not in ROLES:
            raise Refused("invalid token: unknown role")
        if self.redis is not None and await self.redis.exists(f"security:revoked:{claims['jti']}"):
            raise Refused("token revoked")
        return Identity(claims["sub"], claims["role"])

    async def logout(self, token: str) -> bool:
        """Revoke until the token's own expiry (the denylist forgets it when it could no longer be used)."""
        claims = self.decode(token)
        if self.redis is None:
            return False
        remaining = max(1, int(claims["exp"] - time.time()) + 1)
        await self.redis.set(f"security:revoked:{claims['jti']}", 1, ex=remaining)
        return True
