"""The embedded stack's lifecycle against real processes: up, status, idempotence, down, versions, and
the data dirs of a service that runs as another user."""

import os
import socket
import stat
import time

import pytest
import redis

from harness.modules import modules
from harness.pids import group_gone
from harness.settings import Settings
from harness.stack import SERVICES, Stack, StackError, find_binary, services_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def every_service() -> list[str]:
    return list(dict.fromkeys(n for spec in modules().values() for n in services_for(spec)))


def test_status_reports_every_service_healthy(stack):
    """Healthy within a bounded wait: earlier tests kill stores, and a target's pool takes a moment to
    replace the connections a restarted PostgreSQL broke."""
    deadline, unhealthy = time.monotonic() + 30, ["?"]
    while unhealthy and time.monotonic() < deadline:
        rows = {r["service"]: r for r in stack.status()}
        assert set(rows) >= set(every_service())
        unhealthy = [name for name in every_service() if not rows[name]["healthy"]]
        if unhealthy:
            time.sleep(0.5)
    assert not unhealthy, f"not healthy within 30 s: {unhealthy}"


def test_up_is_idempotent(stack):
    before = {n: e["pid"] for n, e in Stack(stack.settings).state.items()}
    assert stack.up(every_service()) == []
    assert {n: e["pid"] for n, e in Stack(stack.settings).state.items()} == before


def test_every_service_probes_its_version_and_targets_have_none(stack):
    for name in ("postgres", "redis", "prometheus"):
        version = SERVICES[name].version(stack.settings)
        assert version and version[0].isdigit(), f"{name}: {version!r}"
    for spec in modules().values():
        assert SERVICES[spec.id].version(stack.settings) is None


def test_a_version_probe_never_raises(tmp_path):
    nothing_there = Settings(state_dir=tmp_path, pg_port=free_port(), redis_port=free_port(),
                             prometheus_port=free_port())
    assert [SERVICES[n].version(nothing_there) for n in ("postgres", "redis", "prometheus")] == [None] * 3


def test_targets_get_the_stores_and_the_admin_token(stack):
    env = SERVICES["scaling_reads"].env(stack.settings)
    assert env["HARNESS_ADMIN_TOKEN"] == stack.settings.admin_secret
    assert env["HARNESS_PG_DSN"] == stack.settings.pg_dsn and "password=" in env["HARNESS_PG_DSN"]
    assert env["HARNESS_REDIS_URL"] == stack.settings.redis_url
    token = stack.settings.state_dir / "admin.token"
    if stack.settings.admin_token is None:
        assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_down_stops_exactly_its_own_processes(tmp_path):
    """A second stack (own state dir, own port) starts a Redis and stops it; the session's stays up."""
    port = free_port()
    settings = Settings(state_dir=tmp_path / "state", redis_port=port)
    other = Stack(settings)
    assert other.up(["redis"]) == ["redis"]
    pid = other.state["redis"]["pid"]
    assert redis.Redis(port=port).ping()
    assert (tmp_path / "state" / "redis.log").exists()
    other.down()
    assert group_gone(pid)
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()
    assert Stack(settings).state == {}


def test_missing_binary_says_how_to_install():
    with pytest.raises(StackError, match="not-a-server not found: apt-get install it"):
        find_binary("not-a-server", hint="apt-get install it")


def test_a_port_hint_names_the_variable_that_moves_it():
    assert SERVICES["postgres"].port_setting == "HARNESS_PG_PORT"
    assert SERVICES["redis"].port_setting == "HARNESS_REDIS_PORT"
    assert SERVICES["prometheus"].port_setting == "HARNESS_PROMETHEUS_PORT"


def test_a_process_without_a_port_counts_as_healthy_while_it_runs(tmp_path, monkeypatch):
    """A module process with no port (a consumer) is healthy while the process the stack started runs."""
    from harness.service import Service

    monkeypatch.setitem(SERVICES, "sleeper", Service("sleeper", lambda s: None, lambda s, d: ["sleep", "60"], None))
    other = Stack(Settings(state_dir=tmp_path / "state"))
    assert other.up(["sleeper"]) == ["sleeper"] and other.healthy("sleeper")
    pid = other.state["sleeper"]["pid"]
    other.down()
    assert not other.healthy("sleeper") and group_gone(pid)


def test_a_process_that_exits_at_once_fails_up_with_its_log(tmp_path, monkeypatch):
    from harness.service import Service

    crasher = Service("crasher", lambda s: None, lambda s, d: ["sh", "-c", "echo boom; exit 3"], None)
    monkeypatch.setitem(SERVICES, "crasher", crasher)
    with pytest.raises(StackError, match="crasher exited while starting(.|\n)*boom"):
        Stack(Settings(state_dir=tmp_path / "state")).up(["crasher"])


# --- data dirs --------------------------------------------------------------------------------------


def test_postgres_data_dir_is_reachable_by_the_user_it_runs_as(tmp_path):
    """A clone under a private (0700) directory must still start PostgreSQL when run as root."""
    from harness import service_user

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    state_dir = private / ".harness"
    data_dir = service_user.data_dir_for(SERVICES["postgres"], state_dir)
    user = service_user.service_user()
    if user is None:  # not root: PostgreSQL runs as us and the state dir is used as it is
        assert data_dir == state_dir / "postgres"
        return
    try:
        assert data_dir.parent != state_dir and service_user.reachable(data_dir.parent, user)
        st = os.lstat(data_dir.parent)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o711, "mkdtemp's dir, traversable only"
        assert service_user.data_dir_for(SERVICES["postgres"], state_dir) == data_dir, "recorded and reused"
    finally:
        data_dir.parent.rmdir()
    assert service_user.data_dir_for(SERVICES["redis"], state_dir) == state_dir / "redis"


def test_a_recorded_private_dir_that_became_a_link_is_refused(tmp_path):
    from harness import service_user

    state_dir = tmp_path / "state"
    created = service_user.private_dir(state_dir)
    created.rmdir()
    created.symlink_to(tmp_path)  # someone swapped it for a link to a directory of their choice
    try:
        with pytest.raises(StackError, match="symbolic link"):
            service_user.private_dir(state_dir)
    finally:
        created.unlink()
    replaced = service_user.private_dir(state_dir)
    replaced.rmdir()
    assert replaced != created, "a vanished private dir is replaced by a new one"


def test_a_data_dir_that_is_a_link_is_refused(tmp_path):
    from harness import service_user

    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "postgres"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StackError, match="refusing the data dir .*symbolic link"):
        service_user.hand_to_service_user(link)
    assert os.stat(tmp_path / "elsewhere").st_uid == os.geteuid(), "the link's target was not chowned"
