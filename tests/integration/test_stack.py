"""The embedded stack's lifecycle against real processes: up, status, idempotence, down."""

from pathlib import Path

import pytest
import redis

from harness.settings import Settings
from harness.stack import Stack, StackError, find_binary

pytestmark = pytest.mark.integration


def test_status_reports_every_service_healthy(stack):
    rows = {r["service"]: r for r in stack.status()}
    assert set(rows) >= {"postgres", "redis", "prometheus", "scaling_reads"}
    assert all(rows[name]["healthy"] for name in ("postgres", "redis", "prometheus", "scaling_reads"))


def test_up_is_idempotent(stack):
    before = {n: e["pid"] for n, e in stack.state.items()}
    assert stack.up(["postgres", "redis", "prometheus", "scaling_reads"]) == []
    assert {n: e["pid"] for n, e in Stack(stack.settings).state.items()} == before


def test_down_stops_exactly_its_own_processes(tmp_path):
    """A second stack (own state dir, own port) starts a Redis and stops it; the session's stays up."""
    settings = Settings(state_dir=tmp_path / "state", redis_port=16999)
    other = Stack(settings)
    assert other.up(["redis"]) == ["redis"]
    pid = other.state["redis"]["pid"]
    assert redis.Redis(port=16999).ping()
    assert (tmp_path / "state" / "redis.log").exists()
    other.down()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=16999, socket_connect_timeout=1).ping()
    assert Stack(settings).state == {}
    assert redis.Redis.from_url(Settings().redis_url).ping()  # the session's Redis is untouched


def test_missing_binary_says_how_to_install():
    with pytest.raises(StackError, match="not-a-server not found: apt-get install it"):
        find_binary("not-a-server", hint="apt-get install it")


def test_postgres_data_dir_is_reachable_by_the_user_it_runs_as(tmp_path):
    """A clone under a private (0700) directory must still start PostgreSQL when run as root."""
    from harness import services

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    data_dir = services.data_dir_for(services.SERVICES["postgres"], private / ".harness")
    user = services._service_user()
    if user is None:  # not root: PostgreSQL runs as us and the state dir is used as it is
        assert data_dir == private / ".harness" / "postgres"
    else:
        assert data_dir.parent != private / ".harness"
        assert services._reachable(data_dir.parent, user)
    assert services.data_dir_for(services.SERVICES["redis"], private / ".harness") == private / ".harness" / "redis"
