"""The target factory (targets/common.py) on a tiny app served by uvicorn in this process: declared
resources only, health with optional resources, the admin-token contract, the failure switch,
input validation and odd requests."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
import requests
from fastapi.routing import APIRoute
from pydantic import BaseModel
from served import serve
from test_scaling_reads import counter

from harness.settings import get_settings
from targets.common import TargetSettings, Text, admin_route, create_app
from targets.resources import Postgres, Redis

pytestmark = pytest.mark.integration

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class Note(BaseModel):
    text: Text


class Tiny:
    """Two variants, a body, a database call and an admin route."""

    def __init__(self, pg: Postgres | None = None) -> None:
        self.pg = pg

    async def hello(self, n: int) -> dict:
        return {"n": n}

    async def note(self, note: Note) -> dict:
        return {"length": len(note.text)}

    async def cast(self, value: str) -> dict:
        async with self.pg.pool.connection() as conn:
            return {"value": (await (await conn.execute("SELECT %s::int", (value,))).fetchone())[0]}

    async def reset(self) -> dict:
        return {"reset": True}

    def routes(self) -> list[APIRoute]:
        routes = [APIRoute(f"/{variant}/hello/{{n}}", self.hello, methods=["GET"]) for variant in ("alpha", "beta")]
        routes += [APIRoute("/alpha/notes", self.note, methods=["POST"]),
                   admin_route("/alpha/reset", self.reset, methods=["POST"])]
        if self.pg is not None:
            routes.append(APIRoute("/alpha/cast/{value}", self.cast, methods=["GET"]))
        return routes


def tiny(resources=(), **settings):
    settings = {"admin_token": None, "target_fail_variant": None, **settings}  # not from this process's env
    tiny = Tiny(next((r for r in resources if isinstance(r, Postgres)), None))
    return create_app("tiny", ("alpha", "beta"), routes=tiny.routes(), resources=resources,
                      settings=TargetSettings(**settings))


def test_only_declared_resources_are_opened_and_checked():
    # The default PostgreSQL and Redis addresses are unreachable here: nothing declared, nothing opened.
    with serve(tiny(pg_dsn="postgresql://nobody@127.0.0.1:1/none", redis_url=DEAD_REDIS)) as url:
        health = requests.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["resources"] == {}
        assert requests.get(f"{url}/alpha/hello/3", timeout=5).json() == {"n": 3}
        assert "/alpha/hello/{n}" in requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]


@pytest.mark.parametrize("optional,status,state", [(True, 200, "degraded"), (False, 503, "unhealthy")])
def test_a_dead_resource_degrades_or_fails_health(optional, status, state):
    with serve(tiny([Redis(DEAD_REDIS, optional=optional)])) as url:
        health = requests.get(f"{url}/healthz", timeout=10)
        assert health.status_code == status and health.json()["status"] == state
        assert "ConnectionError" in health.json()["resources"]["redis"]


def test_admin_routes_are_off_without_a_token():
    with serve(tiny()) as url:
        response = requests.post(f"{url}/alpha/reset", headers={"Authorization": "Bearer anything"}, timeout=5)
        assert response.status_code == 404 and "HARNESS_ADMIN_TOKEN" in response.json()["error"]


def test_admin_routes_need_the_right_token():
    with serve(tiny(admin_token="s3cret-token")) as url:
        assert requests.post(f"{url}/alpha/reset", timeout=5).status_code == 401
        wrong = requests.post(f"{url}/alpha/reset", headers={"Authorization": "Bearer s3cret"}, timeout=5)
        assert wrong.status_code == 403
        right = requests.post(f"{url}/alpha/reset", headers={"Authorization": "Bearer s3cret-token"}, timeout=5)
        assert right.status_code == 200 and right.json() == {"reset": True}


def test_failure_switch_fails_the_share_asked_for_evenly():
    with serve(tiny(target_fail_variant="alpha", target_fail_ratio=0.5, admin_token="t")) as url:
        before = counter(url, "harness_http_responses_total", module="tiny", variant="alpha", status="503")
        statuses = [requests.get(f"{url}/alpha/hello/1", timeout=5).status_code for _ in range(6)]
        assert statuses == [200, 503] * 3
        assert [requests.get(f"{url}/beta/hello/1", timeout=5).status_code for _ in range(4)] == [200] * 4
        admin = [requests.post(f"{url}/alpha/reset", headers={"Authorization": "Bearer t"}, timeout=5).status_code
                 for _ in range(2)]
        assert admin == [200, 200]  # a run can still set its phase up
        assert counter(url, "harness_http_responses_total", module="tiny", variant="alpha", status="503") - before == 3


def test_failure_switch_is_off_by_default_and_checked(monkeypatch):
    assert TargetSettings().target_fail_ratio == 0
    monkeypatch.setenv("HARNESS_TARGET_FAIL_VARIANT", "gamma")
    monkeypatch.setenv("HARNESS_TARGET_FAIL_RATIO", "0.25")
    monkeypatch.setenv("HARNESS_ADMIN_TOKEN", "")
    settings = TargetSettings()
    assert (settings.target_fail_variant, settings.target_fail_ratio, settings.admin_token) == ("gamma", 0.25, None)
    with pytest.raises(ValueError, match="'gamma' is not a variant of this target"):
        create_app("tiny", ("alpha", "beta"), routes=Tiny().routes(), settings=settings)


@pytest.mark.parametrize("text,message", [("a\x00b", "NUL"), ("\ud800", "surrogates")])
def test_text_the_database_cannot_store_is_a_422(text, message):
    with serve(tiny()) as url:
        response = requests.post(f"{url}/alpha/notes", json={"text": text}, timeout=5)
        assert response.status_code == 422 and message in response.json()["error"]
        assert requests.post(f"{url}/alpha/notes", data="{", timeout=5).status_code == 422


def test_input_the_database_rejects_is_a_422(stack):
    with serve(tiny([Postgres(get_settings().pg_dsn, size=2)])) as url:
        assert requests.get(f"{url}/alpha/cast/12", timeout=5).json() == {"value": 12}
        rejected = requests.get(f"{url}/alpha/cast/twelve", timeout=5)
        assert rejected.status_code == 422 and "the database rejected the input" in rejected.json()["error"]
        assert requests.get(f"{url}/healthz", timeout=5).json()["resources"] == {"postgres": "ok"}


@pytest.mark.parametrize("method,target", [("OPTIONS", "*"), ("GET", "/alpha"), ("GET", "//alpha//hello/x"),
                                           ("BREW", "/alpha/hello/1"), ("GET", "/alpha/hello/%ff")])
def test_odd_requests_never_get_a_5xx(method, target):
    with serve(tiny()) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.putrequest(method, target)
        conn.endheaders()
        assert conn.getresponse().status < 500
        conn.close()
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
