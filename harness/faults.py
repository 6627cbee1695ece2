"""Faults as data, the run side: a schedule driven by the phase's tick loop, and what a fault did.

`FaultSchedule` begins each of a scenario's faults at measured_start + at_s and ends it duration_s
after it really began, through two callables (the stack's `fault_begin` / `fault_end`), and keeps
each fault's real begin and end. It reads no clock of its own: `tick(now)` is given the time, so it
is tested without clocks. `finish()` ends whatever is still on, whatever happened to the phase.

`fault_metrics` derives, from the per-second completion and failure series of the phase:
- fault_availability: successful / all requests whose completion fell inside the fault windows;
- recovery_s: seconds from a fault's end until the successful throughput of a second is back to
  >= 80% of the pre-fault median with no failure in it; censored ">= remaining seconds" when the
  window ends first (the worst over the phase's faults).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from harness import censored

RECOVERED_SHARE = 0.8


class FaultSchedule:
    def __init__(self, faults, begin: Callable[[str, str], None], end: Callable[[str, str], None],
                 clock: Callable[[], float]) -> None:
        self._begin, self._end, self._clock = begin, end, clock
        self.measured_start: float | None = None
        self.records = [{"service": f.service, "action": f.action, "planned_at_s": f.at_s,
                         "duration_s": f.duration_s, "begin": None, "end": None, "error": None} for f in faults]
        self._durations = [f.duration_s for f in faults]

    def start(self, measured_start: float) -> None:
        self.measured_start = measured_start

    @property
    def active(self) -> bool:
        return any(r["begin"] is not None and r["end"] is None for r in self.records)

    def tick(self, now: float) -> None:
        if self.measured_start is None:
            return
        for record, duration in zip(self.records, self._durations, strict=True):
            if record["error"]:
                continue
            if record["begin"] is None and now >= self.measured_start + record["planned_at_s"]:
                self._call(record, "begin", self._begin)
            elif record["begin"] is not None and record["end"] is None and now >= record["begin"] + duration:
                self._call(record, "end", self._end)

    def finish(self) -> list[dict]:
        """End every fault still on; a fault that never began says why. Returns the records."""
        for record in self.records:
            if record["begin"] is not None and record["end"] is None:
                self._call(record, "end", self._end)
            elif record["begin"] is None and not record["error"]:
                record["error"] = ("the phase ended before the fault's time" if self.measured_start is not None
                                   else "the load generator never reported its start")
        return self.records

    def _call(self, record: dict, which: str, action: Callable[[str, str], None]) -> None:
        try:
            action(record["service"], record["action"])
        except Exception as exc:  # recorded in the phase: the claims reading it become invalid
            record["error"] = f"fault_{which} {record['action']} {record['service']}: {type(exc).__name__}: {exc}"
            if which == "begin":
                return
        record[which] = self._clock()


def done(record: dict) -> bool:
    return record.get("begin") is not None and record.get("end") is not None and not record.get("error")


def _series(per_second: dict | None) -> dict[int, int]:
    return {int(k): v for k, v in (per_second or {}).items()}


def fault_metrics(faults: list[dict], completions: dict | None, failures: dict | None,
                  measured_start: float, end: float) -> dict:
    """{fault_availability, recovery_s} of one phase; {} when it had no fault that really happened."""
    windows = sorted((f["begin"], f["end"]) for f in faults if done(f))
    if not windows:
        return {}
    if failures is None:  # a results file without the failure series cannot say
        return {"fault_availability": None, "recovery_s": None}
    completed, failed = _series(completions), _series(failures)
    succeeded = {s: completed.get(s, 0) - failed.get(s, 0) for s in completed}
    inside = {s for begin, stop in windows for s in range(int(begin), int(stop) + 1)}
    total = sum(completed.get(s, 0) for s in inside)
    availability = sum(succeeded.get(s, 0) for s in inside) / total if total else None
    before = [succeeded.get(s, 0) for s in range(math.ceil(measured_start), int(windows[0][0]))]
    if not before:
        return {"fault_availability": availability, "recovery_s": None}
    normal = statistics.median(before)
    last_full = int(end) - 1  # the phase's last whole second
    recoveries = []
    for i, (_, stop) in enumerate(windows):
        limit = min(last_full, int(windows[i + 1][0]) - 1) if i + 1 < len(windows) else last_full
        good = next((s for s in range(int(stop), limit + 1)
                     if succeeded.get(s, 0) >= RECOVERED_SHARE * normal and not failed.get(s)), None)
        recoveries.append(max(0.0, good - stop) if good is not None else censored.ge(max(0.0, limit + 1 - stop)))
    return {"fault_availability": availability, "recovery_s": censored.maximum(recoveries)}
