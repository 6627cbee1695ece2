"""The embedded PostgreSQL is safe by default: scram with a generated password kept 0600 in the
state dir, no access over TCP without it, and a data dir left by an older (trust) setup is
re-initialised. A private stack (own state dir, own port) keeps the session's stack out of it."""

import os
import shutil
import socket
import stat
from pathlib import Path

import psycopg
import pytest

from harness import services_pg
from harness.service_user import data_dir_for
from harness.settings import Settings
from harness.stack import Stack, StackError

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    settings = Settings(state_dir=tmp_path_factory.mktemp("pg") / "state", pg_port=free_port())
    stack = Stack(settings)
    assert stack.up(["postgres"]) == ["postgres"]
    yield stack
    data_dir = Path(stack.state["postgres"]["data_dir"])
    stack.down()
    remove_data_dir(settings, data_dir)


def remove_data_dir(settings: Settings, data_dir: Path) -> None:
    """The data dir, and the private dir holding it when the state dir was out of PostgreSQL's reach."""
    shutil.rmtree(data_dir, ignore_errors=True)
    if data_dir.parent != settings.state_dir:
        data_dir.parent.rmdir()


def tcp(settings: Settings, **overrides) -> dict:
    # passfile: a ~/.pgpass or PGPASSWORD of the machine must not supply the password behind our back
    return {**settings.pg_conninfo, "passfile": os.devnull, "connect_timeout": 5, **overrides}


def test_the_generated_password_is_private_to_the_owner(pg):
    path = pg.settings.state_dir / "postgres.password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
    assert pg.settings.pg_secret == path.read_text().strip()


def test_the_password_connects_over_tcp(pg):
    with psycopg.connect(**tcp(pg.settings)) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == pg.settings.pg_user


def test_tcp_without_the_password_fails(pg):
    no_password = {k: v for k, v in tcp(pg.settings).items() if k != "password"}
    env_password = os.environ.pop("PGPASSWORD", None)
    try:
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(**no_password)
    finally:
        if env_password is not None:
            os.environ["PGPASSWORD"] = env_password


def test_tcp_with_a_wrong_password_fails(pg):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**tcp(pg.settings, password="not-" + pg.settings.pg_secret))


def test_no_rule_trusts_anyone(pg):
    hba = (pg.state["postgres"]["data_dir"] + "/pg_hba.conf")
    rules = [line.split() for line in open(hba) if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules), rules


def test_the_database_name_is_quoted_as_an_identifier(pg):
    """A name that needs quoting (mixed case) is created as such, not folded or injected."""
    settings = Settings(state_dir=pg.settings.state_dir, pg_port=pg.settings.pg_port, pg_database="Mixed_Case")
    services_pg.create_database(settings)
    with psycopg.connect(**tcp(settings)) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "Mixed_Case"


def test_a_trust_data_dir_of_an_older_checkout_is_reinitialised(tmp_path):
    """An older harness ran `initdb --auth=trust`; the data dir it left is not used as it is."""
    settings = Settings(state_dir=tmp_path / "state", pg_port=free_port())
    stack = Stack(settings)
    data_dir = data_dir_for(services_pg.SERVICE, settings.state_dir)
    data_dir.mkdir(parents=True)
    (data_dir / "PG_VERSION").write_text("15\n")
    (data_dir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    assert "trust" in services_pg.reinit_reason(settings, data_dir)
    try:
        assert stack.up(["postgres"]) == ["postgres"]
        assert services_pg.reinit_reason(settings, data_dir) is None
        hba = (data_dir / "pg_hba.conf").read_text().splitlines()
        assert not [line for line in hba if "trust" in line and not line.startswith("#")]
        with psycopg.connect(**tcp(settings, dbname="postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stack.down()
        remove_data_dir(settings, data_dir)


def test_a_data_dir_whose_password_is_lost_is_reinitialised_not_guessed(tmp_path):
    settings = Settings(state_dir=tmp_path / "state")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text("15\n")
    (data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    assert "password is not in" in services_pg.reinit_reason(settings, data_dir)


def test_a_data_dir_in_use_is_never_removed(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text("15\n")
    (data_dir / "pg_hba.conf").write_text("local all all trust\n")
    (data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}\n")
    with pytest.raises(StackError, match="still runs on it"):
        services_pg.prepare(Settings(state_dir=tmp_path / "state"), data_dir)
    assert (data_dir / "PG_VERSION").exists()
