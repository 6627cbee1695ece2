"""Host noise with real processes on this machine (harness/noise.py): a CPU spinner outside the run is
foreign CPU; the same spinner as a process of the run (a child the harness waits for, or a service's
group leader) is the run's.

A mechanism test, not a benchmark: each spinner burns SPIN_S seconds of CPU as the kernel counts it
(time.process_time, not a wall clock), whatever else the machine does, and the bounds leave a quarter
of it for the tick granularity and the accounting's documented error.
"""

import dataclasses
import os
import signal
import subprocess
import sys

from harness import noise, pids

SPIN_S = 2.0
TICK = os.sysconf("SC_CLK_TCK")
ME = [os.getpid()]


def spinner(then: str = "") -> list[str]:
    code = f"import time\nstart = time.process_time()\nwhile time.process_time() - start < {SPIN_S}: pass\n{then}"
    return [sys.executable, "-c", code]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        return noise.parse_proc_stat(f.read()).cpu / TICK


def summary(first: noise.Snapshot, last: noise.Snapshot) -> dict:
    return noise.summarize([first, last], TICK, first.at, last.at, [])


def test_a_spinner_outside_the_run_is_foreign_cpu(tmp_path):
    first = noise.snapshot(ME, [])
    # detached: init adopts it, as any other program on the host
    pid, _ = pids.launch(spinner(), tmp_path / "spinner.log", dict(os.environ), tmp_path)
    pids.wait_for(lambda: pids.state_of(pid) in (None, "Z"), 120, "the spinner to finish")
    n = summary(first, noise.snapshot(ME, []))
    assert n["foreign_cpu_s"] >= 0.75 * SPIN_S, n
    assert n["run_cpu_s"] < 0.25 * SPIN_S, n


def test_a_child_the_run_started_and_waited_for_is_the_runs_though_no_snapshot_saw_it():
    first = noise.snapshot(ME, [])
    subprocess.run(spinner(), check=True)  # starts and ends between the two snapshots
    n = summary(first, noise.snapshot(ME, []))
    assert n["run_cpu_s"] >= 0.75 * SPIN_S, n


def test_a_services_spinner_moves_from_foreign_to_the_run_when_the_run_owns_it(tmp_path):
    first = noise.snapshot(ME, [])
    pid, _ = pids.launch(spinner(then="time.sleep(600)"), tmp_path / "service.log", dict(os.environ), tmp_path)
    try:
        pids.wait_for(lambda: cpu_s(pid) >= SPIN_S, 120, "the spinner to burn its CPU")
        last = noise.snapshot(ME, [pid])  # registered as a service: its group leader
    finally:
        pids.terminate(pid, signal.SIGTERM)
    owned = summary(first, last)
    assert owned["run_cpu_s"] >= 0.75 * SPIN_S, owned
    # the same two snapshots, with the spinner not the run's: only the attribution changes
    alien = summary(first, dataclasses.replace(last, run=noise.members(last.procs.values(), ME)))
    assert alien["run_cpu_s"] < 0.25 * SPIN_S, alien
    assert alien["foreign_cpu_s"] - owned["foreign_cpu_s"] >= 0.75 * SPIN_S, (alien, owned)
    assert alien["busy_cpu_s"] == owned["busy_cpu_s"]
