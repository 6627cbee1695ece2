"""The processes the stack owns: a pid plus its start time names one process (a recycled pid is
never signalled), and every wait is bounded.

A service is its process group (each starts in a new session) plus every descendant: PostgreSQL's
backends call setsid(), so a signal to the postmaster's group alone would leave them running. Faults
signal the whole tree; a graceful stop signals the group and lets the service stop its own children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.service import StackError

STOPPED = ("T", "t")


def stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def state_of(pid: int) -> str | None:
    """The process's state letter (R, S, T stopped, Z zombie), None when it is gone."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def stopped(pid: int) -> bool:
    return state_of(pid) in STOPPED


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; with the pid it names one process."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[19])


def alive(pid: int, ticks: int | None) -> bool:
    """True when pid is still the process we started (not a zombie), so a recycled pid is never signalled."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z" and ticks is not None and int(fields[19]) == ticks


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def tree(pid: int) -> list[int]:
    """pid, the other members of its process group, and all their descendants (leader first)."""
    children: dict[int, list[int]] = {}
    members = [pid]
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            other = int(stat_file.parent.name)
            ppid, pgrp = map(int, stat_file.read_text().rsplit(")", 1)[1].split()[1:3])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(other)
        if pgrp == pid and other != pid:
            members.append(other)
    found, todo = [], list(members)
    while todo:
        current = todo.pop(0)
        if current not in found:
            found.append(current)
            todo.extend(children.get(current, []))
    return found


def signal_tree(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def all_stopped(pids: list[int]) -> bool:
    """Every pid is stopped (or has exited meanwhile)."""
    return all(state_of(pid) in (*STOPPED, None, "Z") for pid in pids)


def all_gone(pids: list[int]) -> bool:
    """Every pid has exited (a zombie has: its parent reaps it)."""
    return all(state_of(pid) in (None, "Z") for pid in pids)


def settle(pid: int, timeout_s: float) -> None:
    """Give init up to `timeout_s` to reap an exited pid: a server that checks whether the pid in its
    lock file still exists (PostgreSQL) would take a zombie for a running predecessor."""
    deadline = time.monotonic() + timeout_s
    while state_of(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.05)


def survives(pid: int, ticks: int | None, timeout_s: float) -> bool:
    """Whether a just started process is still running after `timeout_s` (it should be)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid, ticks):
            return False
        time.sleep(0.05)
    return alive(pid, ticks)


# The service runs in a session of its own, as a child of a shell that exits at once: init adopts it,
# so no process of the harness has to reap it. A killed service left as the zombie child of a
# long-lived process (a test session) would otherwise keep its pid "in use", and PostgreSQL refuses
# to start on a data dir whose postmaster.pid names a pid that still exists.
_LAUNCH = 'log="$1"; shift; setsid "$@" </dev/null >>"$log" 2>&1 & echo $!'


def launch(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> tuple[int, int | None]:
    """Start `command` detached, output appended to `log`; its (pid, start ticks)."""
    done = subprocess.run(["sh", "-c", _LAUNCH, "launch", str(log), *command], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise StackError(f"could not start {command[0]}: {done.stderr.strip() or done.stdout.strip()}")
    pid = int(done.stdout)
    return pid, start_ticks(pid)


def group_gone(pid: int) -> bool:
    """No process of the group runs any more (zombies wait for init, which may reap them late)."""
    return all_gone(tree(pid))


def terminate(pid: int, sig: int, timeout_s: float = 20.0, resume: bool = False) -> None:
    """Ask the group to stop with `sig` (the service stops its own children) and wait until it is
    gone; after `timeout_s`, SIGKILL the whole tree."""
    signal_group(pid, sig)
    if resume:  # a stopped process only acts on the signal once continued
        signal_tree(tree(pid), signal.SIGCONT)
    try:
        wait_for(lambda: group_gone(pid), timeout_s, f"pid {pid} to stop")
    except StackError:
        signal_tree(tree(pid), signal.SIGKILL)
