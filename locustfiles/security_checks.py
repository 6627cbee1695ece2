"""Security & Access's attack checks: real attack requests against the target, counted with attempts.

Each check sends a bounded number of requests that must be refused with a specific status and counts the
ones that were not (accepted, or refused with another status). A control request first proves that the
genuine credential works: a check whose control fails raises, so its invariants fail ("not measured"),
never pass. The locustfile runs them against the phase's variant when the test stops; the integration
tests run them against a target served in-process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import jwt
import requests

from harness.spec import InvariantResult

ATTEMPTS = 5  # per attack
REVOKED_PROBES, REVOKED_SPACING_S = 10, 0.05  # after logout: probes, this far apart
TIMEOUT_S = 5.0


@dataclass
class Tally:
    """Attempts and answers per attack; `violations` are the answers other than the expected refusal."""

    expected: int
    attempts: Counter = field(default_factory=Counter)
    violations: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    def record(self, attack: str, status: int) -> None:
        self.attempts[attack] += 1
        self.statuses[status] += 1
        if status != self.expected:
            self.violations[attack] += 1

    def result(self, name: str, note: str = "") -> InvariantResult:
        attempts, violations = sum(self.attempts.values()), sum(self.violations.values())
        if attempts == 0:
            return InvariantResult(name, 1, "== 0", False, "no attack request was sent: not measured")
        per = ", ".join(f"{a} {self.violations[a]}/{n}" for a, n in self.attempts.items())
        detail = (f"{violations} of {attempts} attack requests not refused with {self.expected} ({per}); "
                  f"statuses {dict(sorted(self.statuses.items()))}" + (f"; {note}" if note else ""))
        return InvariantResult(name, violations, "== 0", violations == 0, detail)


class Client:
    """One variant of the target, over plain HTTP (requests), every call bounded by TIMEOUT_S."""

    def __init__(self, base_url: str, variant: str, password: str) -> None:
        self.base, self.variant, self.password = base_url.rstrip("/"), variant, password
        self.http = requests.Session()

    def login(self, user: str, ttl_s: int | None = None) -> str:
        body = {"user": user, "password": self.password, **({"ttl_s": ttl_s} if ttl_s else {})}
        response = self.http.post(f"{self.base}/{self.variant}/login", json=body, timeout=TIMEOUT_S)
        response.raise_for_status()
        self.http.cookies.clear()  # credentials are sent explicitly, one at a time
        return response.json()["token"]

    def call(self, path: str, credential: str, method: str = "GET") -> requests.Response:
        if self.variant == "session":
            kwargs = {"cookies": {"sid": credential}}
        else:
            kwargs = {"headers": {"Authorization": f"Bearer {credential}"}}
        return self.http.request(method, f"{self.base}/{self.variant}/{path}", timeout=TIMEOUT_S, **kwargs)

    def control(self, credential: str, path: str = "resource") -> None:
        status = self.call(path, credential).status_code
        if status != 200:
            raise RuntimeError(f"control: a genuine credential got {status} on /{self.variant}/{path}; the attacks "
                               "would measure nothing")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tampered(token: str) -> str:
    """The same header and payload with a different signature (its last 4 characters changed); a session id
    with its last 4 characters changed."""
    return f"{token[:-4]}{'AAAA' if token[-4:] != 'AAAA' else 'BBBB'}"


def escalated_claims() -> dict:
    return {"sub": "attacker", "role": "admin", "jti": secrets.token_hex(16), "exp": int(time.time()) + 600}


def alg_none() -> str:
    return jwt.encode(escalated_claims(), None, algorithm="none")


def alg_confusion(public_pem: bytes) -> str:
    """HS256 "signed" with the EdDSA public key as the HMAC secret: accepted by a verifier that takes the
    algorithm from the token and uses the same key object for both. PyJWT refuses to sign it (the key is
    asymmetric), which is the point, so the token is assembled by hand."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(escalated_claims()).encode())
    signature = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def forged(client: Client) -> InvariantResult:
    tally = Tally(401)
    genuine = client.login("forger")
    client.control(genuine)
    short = client.login("forger-short", ttl_s=1)
    client.control(short)
    forgeries = {"tampered": [tampered(genuine)]}
    if client.variant == "session":
        forgeries["guessed_session"] = [secrets.token_urlsafe(32) for _ in range(ATTEMPTS)]
    else:
        pem = client.http.get(f"{client.base}/jwt_eddsa/public_key", timeout=TIMEOUT_S)
        pem.raise_for_status()
        forgeries["alg_none"] = [alg_none() for _ in range(ATTEMPTS)]
        forgeries["alg_confusion"] = [alg_confusion(pem.content) for _ in range(ATTEMPTS)]
    for attack, credentials in forgeries.items():
        for credential in credentials * (ATTEMPTS if len(credentials) == 1 else 1):
            tally.record(attack, client.call("resource", credential).status_code)
            tally.record(attack, client.call("admin", credential).status_code)
    time.sleep(1.1)  # the short credential's second ends
    for _ in range(ATTEMPTS):
        tally.record("expired", client.call("resource", short).status_code)
    return tally.result("forged_accepted")


def revoked(client: Client) -> InvariantResult:
    """Log out, then probe with the old credential: the number not refused, and when the first refusal came."""
    tally = Tally(401)
    credential = client.login("leaver")
    client.control(credential)
    logout = client.call("logout", credential, method="POST")
    if logout.status_code != 200:
        raise RuntimeError(f"logout answered {logout.status_code}: {logout.text[:200]}")
    started, first_refusal = time.monotonic(), None
    for _ in range(REVOKED_PROBES):
        status = client.call("resource", credential).status_code
        tally.record("after_logout", status)
        if status == tally.expected and first_refusal is None:
            first_refusal = time.monotonic() - started
        time.sleep(REVOKED_SPACING_S)
    elapsed = time.monotonic() - started
    note = (f"first refusal {first_refusal * 1000:.0f} ms after logout" if first_refusal is not None else
            f"still accepted {elapsed * 1000:.0f} ms after logout (a plain JWT lives until it expires)")
    return tally.result("revoked_accepted", note)


def escalation(client: Client) -> InvariantResult:
    tally = Tally(403)
    client.control(client.login("admin"), "admin")
    user = client.login("plain-user")
    client.control(user)
    for _ in range(ATTEMPTS):
        tally.record("user_on_admin_route", client.call("admin", user).status_code)
    return tally.result("escalation_accepted")


def attack(base_url: str, variant: str, password: str) -> list[InvariantResult]:
    client = Client(base_url, variant, password)
    return [forged(client), revoked(client), escalation(client)]
