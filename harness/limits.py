"""Declared resource limits on a stack service for a scenario's phases: the store made the bottleneck.

On a production system the app tier scales out and the store does not, so a pattern that spares the
store (batching: one commit per batch instead of one per row) shows in end-to-end throughput only where
the store is what runs out. On two shared cores the HTTP path saturates first, so a scenario can
declare `Limit(service="postgres", cpus=0.1)`: for each of its phases every process of that service
(and every child it forks meanwhile) runs in a cgroup v1 cpu group with a CFS quota of `cpus` CPU
seconds per second, and is moved back when the phase ends.

Where the limit cannot be set (no cgroup v1 cpu controller, not root, a service the harness did not
start) the scenario is not run, with the reason; it is never run unlimited and never passed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


def unavailable(root: Path = CPU) -> str | None:
    """Why a cpu limit cannot be set on this machine, or None."""
    if not (root / "cpu.cfs_quota_us").exists():
        return (f"no cgroup v1 cpu controller at {root} (a cgroup v2 host, or not Linux): the store's cpu limit "
                "cannot be set")
    if os.geteuid() != 0 or not os.access(root, os.W_OK):
        return f"setting a cpu limit needs root: {root} is not writable by this user"
    return None


def _cgroup_of(pid: int) -> str:
    """The pid's cpu cgroup path ("/" at the root), to move it back there."""
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                return path
    except OSError:
        pass
    return "/"


def _move(group: Path, pid: int | str) -> bool:
    try:
        (group / "cgroup.procs").write_text(str(pid))
        return True
    except (ProcessLookupError, FileNotFoundError):
        return False
    except OSError as exc:
        if exc.errno == 3:  # ESRCH: the process is gone
            return False
        raise


@contextlib.contextmanager
def cpu_limited(name: str, pids: list[int], cpus: float, root: Path = CPU) -> Iterator[Path]:
    """Run `pids` (a service's process tree) under a CFS quota of `cpus` for the block; every process in
    the group when it ends (with the children forked meanwhile) goes back to where the first pid was."""
    if cpus <= 0:
        raise ValueError(f"cpus must be > 0, got {cpus}")
    if (reason := unavailable(root)) is not None:
        raise PermissionError(reason)
    home = root / _cgroup_of(pids[0]).lstrip("/") if pids else root
    group = root / f"pattern-harness-{name}"
    group.mkdir(exist_ok=True)
    try:
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(max(1000, int(cpus * PERIOD_US))))
        moved = [pid for pid in pids if _move(group, pid)]
        if not moved:
            raise ProcessLookupError(f"{name}: none of its processes {pids} is alive to limit")
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            _move(home, pid)
        (group / "cpu.cfs_quota_us").write_text("-1")
        with contextlib.suppress(OSError):
            group.rmdir()


def quota(group: Path) -> float | None:
    """The group's cpu limit in CPUs (None: unlimited)."""
    value = int((group / "cpu.cfs_quota_us").read_text())
    return None if value < 0 else value / int((group / "cpu.cfs_period_us").read_text())
