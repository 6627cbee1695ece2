"""Security & Access against its real target (served in-process) and the embedded stack's Redis: every attack
is refused where the variant claims protection, and plain JWT's acceptance after logout is shown; each
limiter at its window's edge; Redis down gives the limiter's chosen failure mode, closed or open, never a
silent pass-through; bad input is a 4xx with a message."""

import socket
import time
import uuid

import pytest
import requests
from served import serve

from harness.settings import get_settings
from locustfiles.security_checks import attack
from targets.common import TargetSettings
from targets.security.main import AUTH_VARIANTS, build
from targets.security.settings import Settings

pytestmark = pytest.mark.integration
LIMIT, WINDOW_S = 5, 1
PASSWORD = Settings().password.get_secret_value()


@pytest.fixture(scope="module")
def base(stack):
    app = build(Settings(limit=LIMIT, window_s=WINDOW_S), TargetSettings(redis_url=get_settings().redis_url))
    with serve(app) as url:
        yield url


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_down_urls():
    """Two targets whose Redis refuses connections (nothing listens on its port): one per failure mode."""
    down = TargetSettings(redis_url=f"redis://127.0.0.1:{unused_port()}/0")
    with serve(build(Settings(on_store_error="closed"), down)) as closed, \
            serve(build(Settings(on_store_error="open"), down)) as opened:
        yield {"closed": closed, "open": opened}


@pytest.mark.parametrize("variant", AUTH_VARIANTS)
def test_attacks_are_refused_and_plain_jwt_outlives_logout(base, variant):
    results = {r.name: r for r in attack(base, variant, PASSWORD)}
    for name in ("forged_accepted", "escalation_accepted"):
        assert results[name].passed and results[name].value == 0, results[name].detail
        assert "of 0 attack" not in results[name].detail
    revoked = results["revoked_accepted"]
    if variant in ("session", "jwt_revocable"):
        assert revoked.value == 0 and "first refusal" in revoked.detail, revoked.detail
    else:  # the finding: a plain JWT is accepted until it expires, whatever logout says
        assert revoked.value == 10 and "still accepted" in revoked.detail, revoked.detail


def hits(session: requests.Session, base: str, variant: str, key: str, count: int) -> list[int]:
    return [session.get(f"{base}/{variant}/resource", headers={"X-API-Key": key}, timeout=5).status_code
            for _ in range(count)]


@pytest.mark.parametrize("variant", ["fixed_window", "sliding_window", "token_bucket"])
def test_a_client_aligned_on_the_window_edge(base, variant):
    """One hit opens the window; limit-1 just before its edge, limit just after: the fixed window admits the
    whole second burst (2x the limit within one window's time), the others almost none of it."""
    key = f"edge-test-{uuid.uuid4().hex[:8]}"
    with requests.Session() as session:
        sent = time.monotonic()
        assert hits(session, base, variant, key, 1) == [200]
        answered = time.monotonic()
        time.sleep(max(0.0, sent + WINDOW_S - 0.3 - time.monotonic()))
        before_started = time.monotonic()
        before = hits(session, base, variant, key, LIMIT - 1)
        time.sleep(max(0.0, answered + WINDOW_S + 0.05 - time.monotonic()))
        after = hits(session, base, variant, key, LIMIT)
        elapsed = time.monotonic() - before_started
    assert before == [200] * (LIMIT - 1), before
    assert set(after) <= {200, 429}
    admitted = after.count(200)
    if variant == "fixed_window":
        assert admitted == LIMIT  # a new window: 2 x LIMIT - 1 admitted in about 0.4 s
    elif variant == "sliding_window":
        assert admitted <= 1, after  # the previous window still weighs almost fully
    else:  # what refilled since the first burst began, and no more
        assert admitted <= 1 + int(elapsed * LIMIT / WINDOW_S), (after, elapsed)
        assert admitted < LIMIT


def test_redis_down_fails_closed_or_open_as_configured_and_says_so(redis_down_urls):
    closed = requests.get(f"{redis_down_urls['closed']}/token_bucket/resource", headers={"X-API-Key": "good-1"},
                          timeout=10)
    assert closed.status_code == 503 and "fails closed" in closed.json()["error"]
    assert closed.headers["Retry-After"] == "1"
    for variant in ("fixed_window", "sliding_window", "token_bucket"):
        opened = requests.get(f"{redis_down_urls['open']}/{variant}/resource", headers={"X-API-Key": "good-1"},
                              timeout=10)
        assert opened.status_code == 200 and opened.headers["X-RateLimit-Degraded"] == "store-unavailable"
    metrics = requests.get(f"{redis_down_urls['open']}/metrics", timeout=10).text
    assert 'decision="store_error_admitted"' in metrics  # counted, not silent
    login = requests.post(f"{redis_down_urls['closed']}/session/login", json={"user": "u", "password": PASSWORD},
                          timeout=10)
    assert login.status_code == 503 and "unavailable" in login.json()["error"]


def test_bad_input_is_a_4xx_with_a_message(base):
    cases = [("get", "/token_bucket/resource", {"headers": {"X-API-Key": "no spaces/allowed"}}, 422),
             ("get", "/token_bucket/resource", {}, 422),
             ("post", "/jwt/login", {"json": {"user": "Bad User", "password": PASSWORD}}, 422),
             ("post", "/jwt/login", {"json": {"user": "u", "password": PASSWORD, "role": "admin"}}, 422),
             ("post", "/jwt/login", {"json": {"user": "u", "password": "wrong"}}, 401),
             ("get", "/jwt/resource", {"headers": {"Authorization": "Bearer not-a-jwt"}}, 401),
             ("get", "/session/resource", {}, 401)]
    for method, path, kwargs, status in cases:
        response = requests.request(method, f"{base}{path}", timeout=10, **kwargs)
        assert response.status_code == status, (path, kwargs, response.text)
        assert response.json()["error"]
