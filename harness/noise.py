"""Host noise over a phase's measured window: load average, steal time, and the CPU that processes
outside the run used, so a reader can tell a slow variant from a busy machine.

Method. During the window the harness takes snapshots of /proc (about one a second, and at the
window's edges): /proc/loadavg, /proc/uptime, the `cpu` line of /proc/stat, and every process's
/proc/<pid>/stat. Over the two snapshots nearest the window's edges:

- capacity is the /proc/stat jiffies of every CPU (cores x window, counted by the kernel), steal is
  its steal column, and host busy CPU is everything but idle, iowait and steal;
- the run is the harness process and its descendants (Locust and its worker processes), plus each
  service of the run that this stack started (the pids in the stack's state file, read at every
  snapshot so a restarted service counts under its new pid) with its process group and descendants;
- the run's CPU is, per process (pid and start time name one), utime+stime+cutime+cstime at its last
  snapshot minus its value when it joined the run: zero if it started after the previous snapshot,
  so a process that lives between two snapshots is counted whole. A run process that disappears and
  whose parent is a run process still there was reaped by it: its whole lifetime is in the parent's
  cutime+cstime from then on, so only its value before the window is taken off;
- kernel threads (ksoftirqd carrying loopback traffic, kworkers writing back, for the run and
  everyone else) are shown apart, neither run nor foreign;
- foreign CPU = host busy - run - kernel threads, clamped at 0, also as a share of capacity.

Error bound. Per-process times are in clock ticks (10 ms): at most one tick per process that ran,
per edge. A run process whose parent is not a run process (a service's leader) or does not wait for
it, and that dies inside the window, loses the CPU it used since the previous snapshot (at most one
snapshot interval per thread); the same holds for a kernel thread that exits. The window the
snapshots span differs from the measured one by the offsets recorded with it (a tick of the phase
loop, 0.25 s, plus the time a snapshot takes). Host busy is counted in whole ticks and process
times from their exact runtime: the two disagree a little either way, which is why foreign CPU is
clamped at 0 and why the flag's limit is far above that disagreement. Services the run uses but
this stack did not start (compose, a system service) are not known to be the run's: their CPU
counts as foreign, and the phase says which they were (`unowned`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

FOREIGN_LIMIT = 0.25  # foreign CPU above this share of capacity (cores x window) flags a phase as noisy
SAMPLE_EVERY_S = 1.0  # a snapshot walks /proc: about 2 ms of CPU for 100 processes
PF_KTHREAD = 0x00200000  # in /proc/<pid>/stat's flags: a kernel thread (pid 2 need not be kthreadd in a container)
PROC = Path("/proc")

Key = tuple[int, int]  # (pid, start ticks): one process, never a recycled pid


@dataclass(frozen=True)
class HostCpu:
    """The `cpu` line of /proc/stat, in jiffies summed over every CPU."""

    total: int
    idle: int
    iowait: int
    steal: int

    @property
    def busy(self) -> int:
        return self.total - self.idle - self.iowait - self.steal


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgrp: int
    start: int  # ticks since boot
    cpu: int  # utime + stime + cutime + cstime, in ticks
    kernel: bool = False  # a kernel thread

    @property
    def key(self) -> Key:
        return self.pid, self.start


@dataclass(frozen=True)
class Snapshot:
    at: float  # epoch s
    uptime: int  # ticks since boot, comparable with Proc.start
    load1: float
    host: HostCpu
    procs: dict[Key, Proc]
    run: frozenset[Key]
    kernel: frozenset[Key]


def parse_host_cpu(text: str) -> HostCpu:
    """/proc/stat's aggregate `cpu` line; guest time is inside user and nice already, so not added."""
    line = next((line for line in text.splitlines() if line.startswith("cpu ")), None)
    if line is None:
        raise ValueError("no aggregate 'cpu' line in /proc/stat")
    values = [int(v) for v in line.split()[1:]] + [0] * 8
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return HostCpu(total=user + nice + system + idle + iowait + irq + softirq + steal, idle=idle,
                   iowait=iowait, steal=steal)


def parse_load1(text: str) -> float:
    return float(text.split()[0])


def parse_proc_stat(text: str) -> Proc:
    """/proc/<pid>/stat; the command may hold spaces and parentheses, so fields count from the last ')'."""
    pid = int(text.split(" ", 1)[0])
    fields = text.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return Proc(pid=pid, ppid=int(fields[1]), pgrp=int(fields[2]), start=int(fields[19]),
                cpu=utime + stime + cutime + cstime, kernel=bool(int(fields[6]) & PF_KTHREAD))


def read_procs(proc: Path = PROC) -> dict[Key, Proc]:
    procs = {}
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            try:
                p = parse_proc_stat((proc / entry.name / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
            procs[p.key] = p
    return procs


def members(procs: Iterable[Proc], leaders: Iterable[int], groups: Iterable[int] = ()) -> frozenset[Key]:
    """The processes of `leaders` and their descendants, plus the process groups `groups` name and
    their descendants (a service runs in a session of its own; PostgreSQL's backends call setsid())."""
    procs = list(procs)
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    groups = set(groups)
    wanted = {*leaders, *groups}
    todo = [p for p in procs if p.pid in wanted or p.pgrp in groups]
    found: set[Key] = set()
    while todo:
        p = todo.pop()
        if p.key not in found:
            found.add(p.key)
            todo.extend(children.get(p.pid, []))
    return frozenset(found)


def snapshot(leaders: Iterable[int], groups: Iterable[int], proc: Path = PROC, clock=time.time) -> Snapshot:
    at = clock()
    # uptime before the walk: a process the walk misses started after it, so it counts whole next time
    uptime = int(float((proc / "uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))
    procs = read_procs(proc)
    kernel = frozenset(k for k, p in procs.items() if p.kernel)
    return Snapshot(at=at, uptime=uptime, load1=parse_load1((proc / "loadavg").read_text()),
                    host=parse_host_cpu((proc / "stat").read_text()), procs=procs,
                    run=members(procs.values(), leaders, groups), kernel=kernel)


def _reaped_by_run(key: Key, prev: Snapshot, cur: Snapshot, before: frozenset[Key], now: frozenset[Key]) -> bool:
    """A selected process gone by `cur` whose parent (or a chain of parents gone with it) was selected
    and still is: that parent waited for it, so its lifetime is in the parent's cutime+cstime."""
    by_pid = {k[0]: k for k in before}
    seen = set()
    while key not in cur.procs and key not in seen:
        seen.add(key)
        parent = by_pid.get(prev.procs[key].ppid)
        if parent is None:
            return False
        if parent in now:
            return True
        key = parent
    return False


def cpu_ticks(snapshots: list[Snapshot], which: Callable[[Snapshot], frozenset[Key]], reaped_by_parent: bool) -> int:
    """CPU ticks the processes `which` selects used between the first and the last snapshot (see the
    module's docstring): per process, its value when it left (or at the end) minus its value when it
    joined; with `reaped_by_parent`, a process its selected parent waited for is counted in the parent."""
    opened: dict[Key, int] = {key: snapshots[0].procs[key].cpu for key in which(snapshots[0])}
    total = 0
    for prev, cur in zip(snapshots, snapshots[1:], strict=False):
        before, now = which(prev), which(cur)
        for key in [k for k in opened if k not in now]:
            base = opened.pop(key)
            reaped = reaped_by_parent and _reaped_by_run(key, prev, cur, before, now)
            total += -base if reaped else prev.procs[key].cpu - base
        for key in now:
            if key not in opened:
                p = cur.procs[key]
                opened[key] = 0 if p.start >= prev.uptime else p.cpu
    last = snapshots[-1]
    return max(0, total + sum(last.procs[key].cpu - base for key, base in opened.items()))


def summarize(snapshots: list[Snapshot], tick: int, start: float, end: float, unowned: list[str]) -> dict:
    """The window's noise from its snapshots, as a phase in run.json keeps it."""
    first, last = snapshots[0], snapshots[-1]
    capacity = last.host.total - first.host.total
    run = cpu_ticks(snapshots, lambda s: s.run, reaped_by_parent=True)
    kernel = cpu_ticks(snapshots, lambda s: s.kernel, reaped_by_parent=False)
    busy = last.host.busy - first.host.busy
    foreign = max(0, busy - run - kernel)

    def share(ticks: int) -> float | None:
        return round(ticks / capacity, 4) if capacity > 0 else None

    return {"window_s": round(last.at - first.at, 2), "start_offset_s": round(first.at - start, 2),
            "end_offset_s": round(last.at - end, 2), "snapshots": len(snapshots),
            "capacity_cpu_s": round(capacity / tick, 2), "load1": last.load1,
            "load1_max": max(s.load1 for s in snapshots), "steal_share": share(last.host.steal - first.host.steal),
            "busy_cpu_s": round(busy / tick, 2), "run_cpu_s": round(run / tick, 2),
            "kernel_cpu_s": round(kernel / tick, 2), "foreign_cpu_s": round(foreign / tick, 2),
            "foreign_share": share(foreign), "unowned": list(unowned)}


def noisy(noise) -> bool:
    """Whether a phase's noise record (a dict or harness.record.Noise) says the host was noisy:
    foreign CPU over FOREIGN_LIMIT of capacity, with every service of the run known to be the run's."""
    get = noise.get if noise is not None else None
    return bool(get and not get("unowned") and (get("foreign_share") or 0) > FOREIGN_LIMIT)


@dataclass
class Sampler:
    """Snapshots from a window's planned start on: at the start, every `every_s`, and at the planned
    end; `window` then summarizes the measured window. `run_pids` returns (leaders, groups, unowned)
    when called: the harness's pids, the run's services' group leaders, and the services it uses but
    this stack did not start."""

    run_pids: Callable[[], tuple[list[int], list[int], list[str]]]
    every_s: float = SAMPLE_EVERY_S
    clock: Callable[[], float] = time.time
    proc: Path = PROC
    snapshots: list[Snapshot] = field(default_factory=list)
    planned: tuple[float, float] | None = None
    unowned: set[str] = field(default_factory=set)

    def expect(self, start: float, end: float) -> None:
        self.planned = (start, end)

    def tick(self) -> None:
        if self.planned is None:
            return
        now, (start, end) = self.clock(), self.planned
        last = self.snapshots[-1].at if self.snapshots else None
        if now >= start and (last is None or now - last >= self.every_s or last < end <= now):
            self.sample()

    def sample(self) -> None:
        leaders, groups, unowned = self.run_pids()
        self.unowned.update(unowned)
        self.snapshots.append(snapshot(leaders, groups, self.proc, self.clock))

    def window(self, start: float, end: float) -> dict | None:
        """The noise over [start, end] from the snapshots nearest its edges; None with fewer than two."""
        if len(self.snapshots) < 2:
            return None
        first = min(range(len(self.snapshots)), key=lambda i: abs(self.snapshots[i].at - start))
        last = min(range(len(self.snapshots)), key=lambda i: abs(self.snapshots[i].at - end))
        if last <= first:
            return None
        return summarize(self.snapshots[first:last + 1], os.sysconf("SC_CLK_TCK"), start, end, sorted(self.unowned))
