"""A second embedded PostgreSQL cluster: its own data dir and port (HARNESS_PG2_PORT, default 15433), the
same binaries, user, generated password and settings as the primary (`services_pg.py`), whose helpers
it runs on `Settings.pg2()`, the settings with this cluster in the primary's place.

What needs it: a transaction across two clusters is a real distributed transaction (two-phase commit
with PREPARE TRANSACTION on each), and one cluster can be stopped while the other serves.
"""

from __future__ import annotations

import signal
from pathlib import Path

from harness import services_pg
from harness.service import Service, never_raises
from harness.settings import Settings


def _prepare(settings: Settings, data_dir: Path) -> None:
    services_pg.prepare(settings.pg2(), data_dir)


def _command(settings: Settings, data_dir: Path) -> list[str]:
    return services_pg.command(settings.pg2(), data_dir)


SERVICE = Service("postgres2", lambda s: s.pg2_port, _command, lambda s: services_pg.healthy(s.pg2()),
                  prepare=_prepare, version=never_raises(lambda s: services_pg._version(s.pg2())),
                  stop_signal=signal.SIGINT, needs_unprivileged_user=True,
                  after_start=lambda s: services_pg.create_database(s.pg2()), port_setting="HARNESS_PG2_PORT",
                  host_field="pg2_host")
