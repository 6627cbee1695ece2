"""Host noise (harness/noise.py): /proc parsing on this machine's /proc and on crafted text, the run's
process set, the per-process CPU arithmetic (processes that start, get reaped or leave between two
snapshots), the summary, the flag, and how run.json, the report and the CLI show it."""

import io
import json
import os
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.progress import Progress
from sample_run import sample_run

from harness import cli, noise, pids, record, report
from harness.modules import get_module
from harness.noise import HostCpu, Proc, Snapshot
from harness.phase import _run_pids
from harness.settings import Settings
from harness.stack import services_for

TICK = os.sysconf("SC_CLK_TCK")


# ---- parsing ----

def test_host_cpu_from_crafted_proc_stat():
    text = ("cpu  1000 10 200 5000 50 5 15 70 30 0\n"
            "cpu0 500 5 100 2500 25 2 7 35 15 0\n"
            "intr 12345\n")
    cpu = noise.parse_host_cpu(text)
    # guest (30) is inside user already: not added to the total
    assert cpu == HostCpu(total=1000 + 10 + 200 + 5000 + 50 + 5 + 15 + 70, idle=5000, iowait=50, steal=70)
    assert cpu.busy == 1000 + 10 + 200 + 5 + 15


def test_host_cpu_of_an_old_kernel_without_steal_columns():
    assert noise.parse_host_cpu("cpu 10 0 5 100 1\n") == HostCpu(total=116, idle=100, iowait=1, steal=0)


def test_proc_stat_without_an_aggregate_line_is_refused():
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        noise.parse_host_cpu("cpu0 1 2 3 4\n")


def test_host_cpu_of_this_machine_adds_up():
    with open("/proc/stat") as f:
        cpu = noise.parse_host_cpu(f.read())
    assert 0 < cpu.busy < cpu.total and cpu.idle < cpu.total and cpu.steal >= 0


def test_proc_stat_with_spaces_and_parentheses_in_the_command():
    #        pid  comm          state ppid pgrp sess tty tpgid flags minflt cminflt majflt cmajflt utime stime
    text = ("4242 (a (b) c) d) S 7 4240 4240 0 -1 4194304 100 0 0 0 " "150 50 "
            # cutime cstime prio nice threads itreal starttime ...
            "30 20 20 0 1 0 987654 1000 10\n")
    assert noise.parse_proc_stat(text) == Proc(pid=4242, ppid=7, pgrp=4240, start=987654, cpu=150 + 50 + 30 + 20)


def test_a_kernel_thread_is_known_by_its_flags():
    line = "14 (ksoftirqd/0) S 2 0 0 0 -1 69238848 0 0 0 0 120 340 0 0 20 0 1 0 9 0 0\n"
    assert noise.parse_proc_stat(line) == Proc(pid=14, ppid=2, pgrp=0, start=9, cpu=460, kernel=True)


def test_this_process_in_real_proc():
    procs = noise.read_procs()
    me = next(p for p in procs.values() if p.pid == os.getpid())
    assert me.ppid == os.getppid() and me.pgrp == os.getpgrp()
    assert me.start == pids.start_ticks(os.getpid())
    times = os.times()  # the same clock, counted by the kernel for this process
    assert abs(me.cpu / TICK - (times.user + times.system + times.children_user + times.children_system)) < 0.05


def test_snapshot_of_this_machine():
    shot = noise.snapshot([os.getpid()], [])
    with open("/proc/loadavg") as f:
        assert shot.load1 >= 0 and abs(shot.load1 - float(f.read().split()[0])) < 5
    mine = {key for key in shot.run}
    assert (os.getpid(), pids.start_ticks(os.getpid())) in mine
    assert all(shot.procs[key].pid != 1 for key in mine)
    assert all(shot.procs[key].ppid in (0, 2) for key in shot.kernel)  # kthreadd and its children
    assert (os.getpid(), pids.start_ticks(os.getpid())) not in shot.kernel
    assert pids.start_ticks(os.getpid()) <= shot.uptime


# ---- the run's processes ----

def proc(pid, ppid, pgrp=None, cpu=0, start=0) -> Proc:
    return Proc(pid=pid, ppid=ppid, pgrp=pid if pgrp is None else pgrp, start=start, cpu=cpu)


def test_members_are_the_leaders_descendants_and_the_services_groups():
    procs = [proc(1, 0), proc(2, 0), proc(90, 1),
             proc(100, 90, pgrp=100), proc(101, 100, pgrp=100), proc(102, 101, pgrp=100),  # harness, locust, worker
             proc(200, 1), proc(201, 200, pgrp=201), proc(202, 201, pgrp=201),  # postmaster, backend, child
             proc(203, 1, pgrp=200),  # a member of the service's group that init adopted
             proc(300, 1), proc(301, 300, pgrp=300)]  # someone else
    keys = noise.members(procs, leaders=[100], groups=[200])
    assert sorted(pid for pid, _ in keys) == [100, 101, 102, 200, 201, 202, 203]
    assert noise.members(procs, leaders=[], groups=[]) == frozenset()


# ---- CPU arithmetic over snapshots ----

def snap(at, procs, run=(), kernel=(), host=(0, 0, 0, 0), load1=1.0, uptime=None) -> Snapshot:
    by_key = {p.key: p for p in procs}
    return Snapshot(at=at, uptime=int(at * 100) if uptime is None else uptime, load1=load1, host=HostCpu(*host),
                    procs=by_key, run=frozenset(p.key for p in procs if p.pid in run),
                    kernel=frozenset(p.key for p in procs if p.pid in kernel))


def run_ticks(snapshots):
    return noise.cpu_ticks(snapshots, lambda s: s.run, reaped_by_parent=True)


def test_a_process_alive_throughout_counts_its_increase():
    assert run_ticks([snap(10, [proc(5, 1, cpu=100)], run=[5]), snap(11, [proc(5, 1, cpu=130)], run=[5]),
                      snap(12, [proc(5, 1, cpu=150)], run=[5])]) == 50


def test_a_child_that_lives_between_two_snapshots_counts_whole_through_its_parent():
    before = snap(10, [proc(5, 1, cpu=100)], run=[5])
    # the child ran 80 ticks and was reaped: its times are in the parent's cutime+cstime now
    after = snap(12, [proc(5, 1, cpu=100 + 3 + 80)], run=[5])
    assert run_ticks([before, after]) == 83


def test_a_child_seen_then_reaped_is_counted_once():
    s0 = snap(10, [proc(5, 1, cpu=100)], run=[5])
    s1 = snap(11, [proc(5, 1, cpu=101), proc(6, 5, cpu=30, start=1050)], run=[5, 6])  # started after s0
    s2 = snap(12, [proc(5, 1, cpu=102 + 80)], run=[5])  # reaped with 80 ticks in all
    assert run_ticks([s0, s1, s2]) == 82


def test_a_child_older_than_the_window_counts_only_its_share_in_it():
    s0 = snap(10, [proc(5, 1, cpu=100), proc(6, 5, cpu=20, start=50)], run=[5, 6])
    s1 = snap(12, [proc(5, 1, cpu=100 + 50)], run=[5])  # reaped with 50 ticks, 20 of them before the window
    assert run_ticks([s0, s1]) == 30


def test_a_subtree_gone_between_snapshots_is_counted_through_the_surviving_ancestor():
    s0 = snap(10, [proc(5, 1, cpu=100), proc(6, 5, cpu=10, start=50), proc(7, 6, cpu=5, start=60)], run=[5, 6, 7])
    s1 = snap(12, [proc(5, 1, cpu=100 + 40 + 25)], run=[5])  # 6 (40 in all) waited for 7 (25), 5 for 6
    assert run_ticks([s0, s1]) == (40 - 10) + (25 - 5)


def test_a_process_nobody_in_the_run_waits_for_counts_until_its_last_snapshot():
    s0 = snap(10, [proc(200, 1, cpu=1000)], run=[200])  # a service's leader: init reaps it
    s1 = snap(11, [proc(200, 1, cpu=1070)], run=[200])
    s2 = snap(12, [], run=[])  # killed: what it used after s1 is lost (the documented bound)
    assert run_ticks([s0, s1, s2]) == 70


def test_a_process_that_leaves_the_run_alive_counts_while_it_was_in_it():
    s0 = snap(10, [proc(5, 1, cpu=0), proc(6, 5, cpu=10)], run=[5, 6])
    s1 = snap(11, [proc(5, 1, cpu=0), proc(6, 5, cpu=40)], run=[5, 6])
    s2 = snap(12, [proc(5, 1, cpu=0), proc(6, 1, cpu=90)], run=[5])  # adopted by init: no longer the run's
    s3 = snap(13, [proc(5, 1, cpu=0), proc(6, 1, cpu=150)], run=[5])
    assert run_ticks([s0, s1, s2, s3]) == 30  # up to its last snapshot in the run


def test_a_restarted_service_counts_its_new_process_from_its_start():
    s0 = snap(10, [proc(200, 1, cpu=500, start=10)], run=[200])
    s1 = snap(11, [proc(200, 1, cpu=520, start=10)], run=[200])
    s2 = snap(12, [proc(210, 1, cpu=15, start=1150)], run=[210])  # the old one stopped, the new one started
    assert run_ticks([s0, s1, s2]) == 20 + 15


def test_kernel_threads_are_never_credited_to_a_parent():
    s0 = snap(10, [proc(2, 0, cpu=0), proc(14, 2, cpu=100)], kernel=[2, 14])
    s1 = snap(11, [proc(2, 0, cpu=0), proc(14, 2, cpu=160)], kernel=[2, 14])
    s2 = snap(12, [proc(2, 0, cpu=0)], kernel=[2])  # a kworker exits: kthreadd's times do not grow
    assert noise.cpu_ticks([s0, s1, s2], lambda s: s.kernel, reaped_by_parent=False) == 60


def test_summary_splits_host_cpu_into_run_kernel_and_foreign():
    # 2 cores x 10 s = 2000 ticks of capacity: 1200 busy, 100 steal; the run 500, kernel threads 100
    s0 = snap(100, [proc(5, 1, cpu=0), proc(2, 0, cpu=0)], run=[5], kernel=[2], host=(10_000, 4_000, 0, 50),
              load1=2.0)
    s1 = snap(105, [proc(5, 1, cpu=200), proc(2, 0, cpu=50)], run=[5], kernel=[2], host=(11_000, 4_400, 0, 100),
              load1=4.5)
    s2 = snap(110, [proc(5, 1, cpu=500), proc(2, 0, cpu=100)], run=[5], kernel=[2], host=(12_000, 4_700, 0, 150),
              load1=3.0)
    n = noise.summarize([s0, s1, s2], 100, start=100.2, end=109.9, unowned=[])
    assert n["window_s"] == 10 and n["start_offset_s"] == -0.2 and n["end_offset_s"] == 0.1
    assert n["capacity_cpu_s"] == 20 and n["busy_cpu_s"] == 12 and n["steal_share"] == 0.05
    assert (n["run_cpu_s"], n["kernel_cpu_s"], n["foreign_cpu_s"]) == (5, 1, 6)
    assert n["foreign_share"] == 0.3 and n["load1"] == 3.0 and n["load1_max"] == 4.5
    assert noise.noisy(n) and noise.noisy(record.Noise.model_validate(n))


def test_foreign_cpu_is_clamped_at_zero():
    s0 = snap(0, [proc(5, 1, cpu=0)], run=[5], host=(0, 0, 0, 0))
    s1 = snap(1, [proc(5, 1, cpu=110)], run=[5], host=(200, 100, 0, 0))  # ticks of two clocks disagree a little
    n = noise.summarize([s0, s1], 100, 0, 1, [])
    assert n["foreign_cpu_s"] == 0 and n["foreign_share"] == 0 and not noise.noisy(n)


def test_the_flag_threshold_and_unowned_services():
    assert not noise.noisy(None) and not noise.noisy({"foreign_share": noise.FOREIGN_LIMIT})
    assert noise.noisy({"foreign_share": noise.FOREIGN_LIMIT + 0.01, "unowned": []})
    # foreign CPU that includes services the harness did not start is not known to be noise
    assert not noise.noisy({"foreign_share": 0.9, "unowned": ["postgres"]})


# ---- the sampler ----

class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_the_sampler_snapshots_from_the_planned_start_every_interval_and_at_the_end():
    clock = Clock(1000.0)
    sampler = noise.Sampler(lambda: ([os.getpid()], [], ["kafka"]), every_s=1.0, clock=clock)
    sampler.tick()
    assert sampler.snapshots == []  # no window planned yet
    sampler.expect(1001.0, 1003.5)
    for now in (1000.5, 1001.0, 1001.25, 1002.0, 1002.25, 1003.0, 1003.5, 1003.75, 1004.5):
        clock.now = now
        sampler.tick()
    assert [s.at for s in sampler.snapshots] == [1001.0, 1002.0, 1003.0, 1003.5, 1004.5]
    n = sampler.window(1001.1, 1003.6)  # the measured window, as Locust recorded it
    assert n["window_s"] == 2.5 and n["snapshots"] == 4 and n["unowned"] == ["kafka"]
    assert n["start_offset_s"] == -0.1 and n["end_offset_s"] == -0.1
    assert noise.Sampler(lambda: ([], [], [])).window(0, 1) is None


# ---- run.json, the report and the CLI ----

NOISE = {"window_s": 20.1, "start_offset_s": 0.1, "end_offset_s": 0.2, "snapshots": 21, "capacity_cpu_s": 40.2,
         "load1": 5.25, "load1_max": 5.5, "steal_share": 0.012, "busy_cpu_s": 38.0, "run_cpu_s": 20.0,
         "kernel_cpu_s": 1.0, "foreign_cpu_s": 17.0, "foreign_share": 0.4229, "unowned": []}
QUIET = {**NOISE, "load1": 2.1, "busy_cpu_s": 22.0, "foreign_cpu_s": 1.0, "foreign_share": 0.0249}


def test_noise_is_kept_in_run_json_and_absent_when_not_sampled():
    data = sample_run(variants=["direct"], repeat=1)
    data["phases"][0]["noise"] = NOISE
    phase = record.load(data).phases[0]
    assert phase.noise.foreign_share == 0.4229 and phase.dump()["noise"] == NOISE
    assert "noise" not in record.load(sample_run(variants=["direct"], repeat=1)).phases[0].dump()


def noisy_report(tmp_path, noises: dict[int, dict]) -> str:
    data = sample_run(variants=["direct", "cache_aside"], repeat=1)
    for phase in data["phases"]:
        if phase["index"] in noises:
            phase["noise"] = noises[phase["index"]]
    report.render(record.load(data), tmp_path)
    return (tmp_path / "report.md").read_text()


def test_a_noisy_phase_is_flagged_near_the_top_and_every_phase_gets_a_noise_row(tmp_path):
    md = noisy_report(tmp_path, {1: NOISE, 2: QUIET})
    assert md.index("## Phases measured on a noisy host") < md.index("## Invariants") < md.index("## Host noise")
    flag = md.split("## Phases measured on a noisy host", 1)[1].split("##", 1)[0]
    assert "phase 1 (ycsb/direct): foreign CPU 42.3% of capacity (17 CPU-s), load average 5.25" in flag
    assert "phase 2" not in flag and "changes no verdict" in flag
    rows = [line for line in md.split("## Host noise", 1)[1].splitlines() if line.startswith("| ")][1:]
    assert rows[0].split(" | ")[-1].strip(" |") == "NOISY" and "42.3%" in rows[0] and "1.2%" in rows[0]
    assert "2.49%" not in rows[1] and "2.5%" in rows[1] and not rows[1].rstrip(" |").endswith("NOISY")
    assert all("–" in row for row in rows[2:])  # phases without noise data say so


def test_quiet_phases_get_the_table_but_no_flag(tmp_path):
    md = noisy_report(tmp_path, {1: QUIET})
    assert "## Host noise" in md and "noisy host" not in md


def test_foreign_cpu_of_services_the_harness_did_not_start_is_not_flagged_and_said(tmp_path):
    md = noisy_report(tmp_path, {1: {**NOISE, "unowned": ["postgres", "redis"]}})
    assert "## Phases measured on a noisy host" not in md
    assert "Phase 1 used services the harness did not start (postgres, redis)" in md


def test_a_run_without_noise_data_has_no_noise_section(tmp_path):
    md = noisy_report(tmp_path, {})
    assert "Host noise" not in md and "noisy host" not in md


def test_the_progress_line_marks_a_noisy_phase():
    out = io.StringIO()
    progress = cli.RichProgress()
    progress.bar = Progress(console=Console(file=out, width=300, color_system=None))
    data = sample_run(variants=["direct"], repeat=1)["phases"][0]
    progress.phase_done(record.Phase.model_validate({**data, "noise": NOISE}))
    progress.phase_done(record.Phase.model_validate({**data, "noise": QUIET}))
    progress.phase_done(record.Phase.model_validate(data))
    lines = out.getvalue().splitlines()
    assert "noisy host: foreign CPU 42.3%" in lines[0]
    assert "noisy" not in lines[1] and "noisy" not in lines[2]


def test_the_run_is_this_process_and_the_services_this_stack_started(tmp_path):
    spec = get_module("scaling_reads")
    me = {"pid": os.getpid(), "ticks": pids.start_ticks(os.getpid())}
    state = {"postgres": me,  # ours and running (this process stands in for it)
             "redis": {**me, "ticks": 1, "fault": "kill"},  # ours, killed by a fault: no process, not foreign
             "prometheus": {**me, "ticks": 1}}  # a stale entry: whatever answers on its port is not ours
    (tmp_path / "state.json").write_text(json.dumps(state))
    leaders, groups, unowned = _run_pids(SimpleNamespace(spec=spec), Settings(state_dir=tmp_path))()
    assert leaders == [os.getpid()] and groups == [os.getpid()]
    assert unowned == [s for s in services_for(spec) if s not in ("postgres", "redis")]
