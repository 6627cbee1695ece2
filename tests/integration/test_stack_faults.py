"""Faults through the stack that owns the pids: kill, stop and restart a real service, then bring it
back; refused for a service the harness did not start. A private stack (own state dir, own ports)
takes the faults, so the session's stack is never disturbed."""

import shutil
import socket
from pathlib import Path

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.pids import alive, group_gone, state_of, stopped, tree
from harness.settings import Settings
from harness.stack import Stack, StackError

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own(tmp_path):
    """A stack with its own Redis; stopped (and checked gone) at the end of the test."""
    stack = Stack(Settings(state_dir=tmp_path / "state", redis_port=free_port()))
    assert stack.up(["redis"]) == ["redis"]
    yield stack
    pid = Stack(stack.settings).state.get("redis", {}).get("pid")
    stack.down()
    assert pid is None or group_gone(pid), f"redis pid {pid} left behind"


def client(stack: Stack, timeout_s: float = 1.0) -> redis.Redis:
    # no retries: one call, one timeout (redis-py retries a timed-out call three times by default)
    return redis.Redis(port=stack.settings.redis_port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                       retry=Retry(NoBackoff(), 0))


def entry(stack: Stack) -> dict:
    return Stack(stack.settings).state["redis"]  # what the state file says, as another process reads it


def test_kill_takes_it_down_and_end_brings_it_back_with_a_new_pid(own):
    before = entry(own)
    client(own).set("k", "v")
    own.fault_begin("redis", "kill")
    assert not alive(before["pid"], before["ticks"])
    assert not own.healthy("redis")
    with pytest.raises(redis.ConnectionError):
        client(own).ping()
    assert entry(own)["fault"] == "kill"
    own.fault_end("redis", "kill")
    after = entry(own)
    assert own.healthy("redis") and client(own).ping()
    assert after["pid"] != before["pid"] and alive(after["pid"], after["ticks"])
    assert after["command"] == before["command"] and after["data_dir"] == before["data_dir"]
    assert "fault" not in after
    assert client(own).get("k") is None, "a killed Redis without persistence comes back empty"


def test_stop_freezes_it_until_end_continues_the_same_process(own):
    before = entry(own)
    own.fault_begin("redis", "stop")
    assert stopped(before["pid"])
    with pytest.raises(redis.TimeoutError):
        client(own, timeout_s=0.5).ping()
    assert not own.healthy("redis")
    own.fault_end("redis", "stop")
    assert client(own).ping() and own.healthy("redis")
    assert entry(own)["pid"] == before["pid"] and "fault" not in entry(own)


def test_restart_stops_it_gracefully_and_end_starts_it_again(own):
    before = entry(own)
    own.fault_begin("redis", "restart")
    assert not alive(before["pid"], before["ticks"]) and not own.healthy("redis")
    own.fault_end("redis", "restart")
    assert client(own).ping() and entry(own)["pid"] != before["pid"]
    log = Path(before["log"]).read_text()
    assert "Received SIGTERM scheduling shutdown" in log and "ready to exit, bye bye" in log


def test_down_during_a_stop_fault_still_stops_it(own):
    pid = entry(own)["pid"]
    own.fault_begin("redis", "stop")
    own.down()
    assert group_gone(pid)
    with pytest.raises(redis.ConnectionError):
        client(own).ping()


def test_up_brings_back_a_service_left_in_a_fault(own):
    """An interrupted run leaves Redis killed; the next `harness up` starts it again."""
    own.fault_begin("redis", "kill")
    events = []
    Stack(own.settings).up(["redis"], on_event=lambda name, message: events.append(message))
    assert client(own).ping() and "fault" not in entry(own)
    assert events[0] == "brought back from an unfinished fault"


def test_faults_are_refused_for_a_service_the_harness_did_not_start(own, tmp_path):
    """Another state dir sees the same Redis answering: external to it, so no fault."""
    stranger = Stack(Settings(state_dir=tmp_path / "other", redis_port=own.settings.redis_port))
    with pytest.raises(StackError, match=r"the harness did not start redis \(it is external\); faults need the "
                                         r"embedded stack"):
        stranger.fault_begin("redis", "kill")
    assert client(own).ping()
    nothing = Stack(Settings(state_dir=tmp_path / "none", redis_port=free_port()))
    with pytest.raises(StackError, match=r"did not start redis \(it is not running\)"):
        nothing.fault_begin("redis", "stop")


def test_bad_fault_requests_are_refused_clearly(own):
    with pytest.raises(StackError, match="unknown fault action 'pause'"):
        own.fault_begin("redis", "pause")
    with pytest.raises(StackError, match="unknown service 'memcached'"):
        own.fault_begin("memcached", "kill")
    with pytest.raises(StackError, match="no kill fault is active on redis"):
        own.fault_end("redis", "kill")
    own.fault_begin("redis", "stop")
    with pytest.raises(StackError, match="already in a stop fault"):
        own.fault_begin("redis", "kill")
    with pytest.raises(StackError, match="no kill fault is active"):
        own.fault_end("redis", "kill")
    own.fault_end("redis", "stop")
    assert client(own).ping()


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory):
    settings = Settings(state_dir=tmp_path_factory.mktemp("faults") / "state", pg_port=free_port())
    stack = Stack(settings)
    stack.up(["postgres"])
    data_dir = Path(stack.state["postgres"]["data_dir"])
    yield stack
    stack.down()
    shutil.rmtree(data_dir, ignore_errors=True)
    if data_dir.parent != settings.state_dir:  # the private dir of a state dir PostgreSQL cannot reach
        data_dir.parent.rmdir()


def test_a_killed_postgres_comes_back_on_the_same_data_dir(own_pg):
    """SIGKILL of the postmaster and its backends (which are in sessions of their own), then crash
    recovery on the same data dir: committed rows stay."""
    dsn = own_pg.settings.pg_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE survivor (id int)")
        conn.execute("INSERT INTO survivor VALUES (42)")
        backend = conn.info.backend_pid
        assert backend in tree(own_pg.state["postgres"]["pid"])
        own_pg.fault_begin("postgres", "kill")
        assert state_of(backend) in (None, "Z"), "the backend died with the postmaster"
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    own_pg.fault_end("postgres", "kill")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT id FROM survivor").fetchall() == [(42,)]


def test_a_stopped_postgres_freezes_its_backends_too(own_pg):
    with psycopg.connect(own_pg.settings.pg_dsn, autocommit=True) as conn:
        backend = conn.info.backend_pid
        own_pg.fault_begin("postgres", "stop")
        assert stopped(backend) and stopped(own_pg.state["postgres"]["pid"])
        assert not own_pg.healthy("postgres")
        own_pg.fault_end("postgres", "stop")
        assert conn.execute("SELECT 1").fetchone() == (1,), "the same connection works again"
