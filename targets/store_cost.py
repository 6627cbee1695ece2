"""What the store itself spends: PostgreSQL's own counters, exported by a target so a phase's cost per
acknowledged row (or per claim) is read from the store, not inferred from the app.

  harness_store_commits_total       counter  transactions committed in the target's database (pg_stat_database
                                             xact_commit), minus this sampler's own queries; read-only ones count,
                                             like the pool's liveness check on each checkout (an empty query)
  harness_store_wal_records_total   counter  WAL records written, cluster-wide (pg_stat_wal)
  harness_store_wal_bytes_total     counter  WAL bytes written, cluster-wide (pg_stat_wal)
  harness_store_wal_syncs_total     counter  WAL fsyncs (pg_stat_wal.wal_sync up to PostgreSQL 17, pg_stat_io's
                                             `wal` fsyncs from 18), cluster-wide
  harness_store_cpu_seconds_total   counter  CPU of every PostgreSQL process (the postmaster, its children, and
                                             the children that exited), from /proc; absent when the server's
                                             processes are not visible (another container)

Every series carries `module` and one `variant` label per variant, like the blob target's CPU: a phase runs
one variant at a time, so a phase's increase of these counters is that variant's. A thread samples the
store once a second on its own connection (the scrape only reads the last sample), so a slow or stopped
database never blocks /metrics; a sample that fails leaves the counters where they were.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily

log = logging.getLogger("harness.store_cost")
FAMILIES = {
    "commits": ("harness_store_commits", "Transactions committed in the target's database"),
    "wal_records": ("harness_store_wal_records", "WAL records written (cluster-wide)"),
    "wal_bytes": ("harness_store_wal_bytes", "WAL bytes written (cluster-wide)"),
    "wal_syncs": ("harness_store_wal_syncs", "WAL fsyncs (cluster-wide)"),
    "cpu_seconds": ("harness_store_cpu_seconds", "CPU seconds of every PostgreSQL process"),
}
_collectors: dict[str, StoreCost] = {}  # one per module and process: tests build several apps


def process_cpu_seconds(root: int, proc: Path = Path("/proc")) -> float | None:
    """CPU seconds of `root` (its own, and its children's that exited and were waited for) and of its
    live children; None when `root` is not visible here."""
    ticks = os.sysconf("SC_CLK_TCK")

    def fields(pid: str) -> list[str] | None:
        try:
            return (proc / pid / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None

    own = fields(str(root))
    if own is None:
        return None
    total = sum(int(own[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    for entry in proc.iterdir():
        if entry.name.isdigit() and entry.name != str(root):
            stat = fields(entry.name)
            if stat is not None and stat[1] == str(root):  # ppid
                total += int(stat[11]) + int(stat[12])
    return total / ticks


class StoreCost:
    """The sampler and the collector of one module's store-cost counters."""

    def __init__(self, dsn: str, module: str, variants: Sequence[str], interval_s: float = 1.0) -> None:
        self.dsn, self.module, self.variants, self.interval_s = dsn, module, list(variants), interval_s
        self.values: dict[str, float] = {}
        self.own_queries = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.stop.clear()
            self.thread = threading.Thread(target=self._run, daemon=True, name=f"store-cost-{self.module}")
            self.thread.start()

    def close(self) -> None:
        self.stop.set()

    def _run(self) -> None:
        import psycopg

        conn = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                self.values = {**self.values, **self.sample(conn)}
            except Exception as exc:  # a stopped or restarting database: keep the last values
                log.debug("store cost sample failed: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
            self.stop.wait(self.interval_s)
        if conn is not None:
            conn.close()

    def sample(self, conn) -> dict[str, float]:
        """One reading of the counters (each query is a commit of its own: they are subtracted)."""
        values = {}
        (commits,) = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                                  ).fetchone()
        cursor = conn.execute("SELECT * FROM pg_stat_wal")
        row = dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))
        if "wal_sync" in row:
            syncs = row["wal_sync"]
        else:  # PostgreSQL 18 moved WAL I/O to pg_stat_io
            (syncs,) = conn.execute("SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE object = 'wal'").fetchone()
            self.own_queries += 1
        (postmaster,) = conn.execute("SELECT coalesce((SELECT pid FROM pg_stat_activity WHERE backend_type = "
                                     "'checkpointer' LIMIT 1), 0)").fetchone()
        self.own_queries += 3
        values["commits"] = float(commits) - self.own_queries
        values["wal_records"], values["wal_bytes"] = float(row["wal_records"]), float(row["wal_bytes"])
        values["wal_syncs"] = float(syncs)
        parent = _ppid(postmaster) if postmaster else None
        cpu = process_cpu_seconds(parent) if parent else None
        if cpu is not None:
            values["cpu_seconds"] = cpu
        return values

    def collect(self):
        values = self.values
        for key, (name, documentation) in FAMILIES.items():
            if key not in values:
                continue
            family = CounterMetricFamily(name, documentation, labels=["module", "variant"])
            for variant in self.variants:
                family.add_metric([self.module, variant], values[key])
            yield family


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def store_cost(dsn: str, module: str, variants: Sequence[str]) -> StoreCost:
    """The module's collector, registered once per process and (re)started."""
    collector = _collectors.get(module)
    if collector is None:
        collector = _collectors[module] = StoreCost(dsn, module, variants)
        REGISTRY.register(collector)
    collector.start()
    return collector
