"""Invariants: correctness checks against the real stores when a phase ends.

A locustfile registers a check for names its module's spec declares
(`@plugin.invariant("lost_writes", "duplicate_writes")`). Before a check reads, the target's in-
flight work must end: the runner polls the target's /healthz until no request under a variant is
still undecided (a retry, a lock wait, a commit that lands after Locust stopped its users), within
the check's bound (`drain=False` for checks that read only the clients' own logs). A check may also
carry a settle callable: the runner polls it until it says the system is quiescent, within a bound;
past the bound the check is not run and its invariants fail with a detail saying so (an asynchronous
consumer that never catches up must not pass). A check that raises fails its invariants too, with
the exception in the detail. Each result dict says whether the spec enforces the invariant for the
variant (`enforced`): this is the one place that decides it; the run record stores it and the
summary, gate, report and CLI read the stored field. `passed` is always the truth of the check.

The comparisons below are pure functions of explicit inputs (id sets, entries, rows), so tests run
them on deliberately broken cases without a Locust run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from harness.spec import InvariantResult, ModuleSpec

log = logging.getLogger("harness")
EXAMPLES = 5  # ids named in a detail


@dataclass(frozen=True)
class Check:
    names: tuple[str, ...]
    run: Callable[[Any], Iterable[InvariantResult]]
    settle: Callable[[Any], bool] | None = None
    settle_timeout_s: float = 30.0
    drain: bool = True


class Invariants:
    """The checks one locustfile registered, run in registration order."""

    def __init__(self, spec: ModuleSpec) -> None:
        self.spec = spec
        self.declared = {i.name: i for i in spec.invariants}
        self.checks: list[Check] = []

    def register(self, *names: str, settle: Callable[[Any], bool] | None = None, settle_timeout_s: float = 30.0,
                 drain: bool = True):
        if not names:
            raise ValueError("name the invariants this check returns, e.g. @plugin.invariant('lost_writes')")
        unknown = [n for n in names if n not in self.declared]
        if unknown:
            raise ValueError(f"invariant {', '.join(unknown)} is not declared in the {self.spec.id} spec "
                             f"(declared: {', '.join(self.declared) or 'none'})")
        if settle_timeout_s <= 0:
            raise ValueError(f"settle_timeout_s must be > 0, got {settle_timeout_s}")

        def decorator(check: Callable[[Any], Iterable[InvariantResult]]):
            self.checks.append(Check(tuple(names), check, settle, settle_timeout_s, drain))
            return check

        return decorator

    def run(self, context: Any, variant: str) -> list[dict]:
        """Every check's results as dicts, with `enforced` for this variant (decided here, once)."""
        results = [result for check in self.checks for result in run_check(check, context)]
        return [{**r.to_dict(), "enforced": self.declared[r.name].enforced(variant)} for r in results]


def run_check(check: Check, context: Any) -> list[InvariantResult]:
    def failed(detail: str) -> list[InvariantResult]:
        return [InvariantResult(name, 1, "== 0", False, detail) for name in check.names]

    try:
        host = getattr(context, "host", None) if check.drain else None
        if host and (left := in_flight_after(host, check.settle_timeout_s)):
            return failed(f"not checked: the target still had {left} requests in flight after "
                          f"{check.settle_timeout_s:g} s")
        if check.settle is not None and not wait_until(lambda: check.settle(context), check.settle_timeout_s):
            return failed(f"not checked: the system was not quiescent within {check.settle_timeout_s:g} s")
        results = list(check.run(context))
    except Exception as exc:  # a broken check must fail its invariants, not the whole results file
        log.exception("invariant check %s raised", "/".join(check.names))
        return failed(f"the check raised {type(exc).__name__}: {exc}")
    stray = sorted({r.name for r in results} - set(check.names))
    if stray:
        return failed(f"the check returned undeclared invariants {', '.join(stray)}")
    return results


def wait_until(ready: Callable[[], bool], timeout_s: float, interval_s: float = 0.25,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll `ready` until it returns True (True) or `timeout_s` passes (False)."""
    deadline = clock() + timeout_s
    while True:
        if ready():
            return True
        if clock() >= deadline:
            return False
        sleep(min(interval_s, max(0.0, deadline - clock())))


def in_flight(host: str) -> int:
    """The target's requests still being decided (its /healthz `in_flight`); 0 when nothing answers
    there: a stopped target has no work in flight."""
    try:
        body = requests.get(f"{host.rstrip('/')}/healthz", timeout=5).json()
    except (requests.ConnectionError, requests.Timeout):
        return 0
    if "in_flight" not in body:
        raise RuntimeError(f"{host}/healthz reports no in_flight count: is it a pattern-harness target?")
    return int(body["in_flight"])


def in_flight_after(host: str, timeout_s: float, interval_s: float = 0.1) -> int:
    """Wait until the target at `host` has no request in flight (0), or return how many it still has."""
    left = in_flight(host)
    deadline = time.monotonic() + timeout_s
    while left and time.monotonic() < deadline:
        time.sleep(interval_s)
        left = in_flight(host)
    return left


class Quiescence:
    """A settle callable: ready when `probe()` (a fingerprint of the stores: row counts, last update,
    command counters) returns the same value twice in a row, `interval_s` apart."""

    def __init__(self, probe: Callable[[], Hashable], interval_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.probe, self.interval_s, self.sleep = probe, interval_s, sleep

    def __call__(self, _context: Any = None) -> bool:
        before = self.probe()
        self.sleep(self.interval_s)
        return self.probe() == before


def _examples(ids: Iterable) -> str:
    ids = sorted(ids, key=str)
    more = f" and {len(ids) - EXAMPLES} more" if len(ids) > EXAMPLES else ""
    return ", ".join(map(str, ids[:EXAMPLES])) + more


def writes_by_id(acknowledged: set[str], stored: Mapping[str, int], lost: str = "lost_writes",
                 duplicate: str = "duplicate_writes") -> list[InvariantResult]:
    """Acknowledged write ids against the ids in the store ({id: rows}): lost = acknowledged and absent,
    duplicate = stored more than once. Ids stored but never acknowledged (answered with an error or
    timed out) are reported, not counted: the client could not know."""
    missing = acknowledged - stored.keys()
    doubled = {i: n for i, n in stored.items() if n > 1}
    unacknowledged = stored.keys() - acknowledged
    context = (f"{len(acknowledged)} acknowledged, {len(stored)} distinct ids in the store"
               + (f"; {len(unacknowledged)} stored but never acknowledged (an error or a timeout answered "
                  f"them), e.g. {_examples(unacknowledged)}" if unacknowledged else ""))
    return [
        InvariantResult(lost, len(missing), "== 0", not missing,
                        (f"{len(missing)} acknowledged ids missing from the store: {_examples(missing)}; "
                         if missing else "") + context),
        InvariantResult(duplicate, len(doubled), "== 0", not doubled,
                        (f"{len(doubled)} ids stored more than once ({sum(doubled.values()) - len(doubled)} extra "
                         f"rows): {_examples(doubled)}; " if doubled else "") + context),
    ]


def stale_entries(entries: Mapping[Hashable, Mapping], rows: Mapping[Hashable, Mapping], fields: Sequence[str],
                  ages: Mapping[Hashable, float | None] | None = None, name: str = "stale_entries",
                  unreadable: int = 0) -> InvariantResult:
    """Copies of rows (in a faster store, a replica) against the rows themselves, on `fields`; a copy of a
    row that does not exist is stale too. `ages` (seconds since each entry was written) go into the
    detail, oldest first."""
    ages = ages or {}
    stale = {}
    for key, entry in entries.items():
        row = rows.get(key)
        if row is None:
            stale[key] = "no such row"
            continue
        differences = [f"{f} {entry.get(f)!r} != {row.get(f)!r}" for f in fields if entry.get(f) != row.get(f)]
        if differences:
            stale[key] = ", ".join(differences)
    oldest = sorted(stale, key=lambda k: -(ages.get(k) or 0.0))[:EXAMPLES]
    shown = "; ".join(f"{k}: {stale[k]}" + (f" (age {ages[k]:.1f} s)" if ages.get(k) is not None else "")
                      for k in oldest)
    detail = (f"{len(stale)} of {len(entries)} entries differ from their rows"
              + (f"; oldest: {shown}" if stale else "")
              + (f"; {unreadable} entries unreadable" if unreadable else ""))
    return InvariantResult(name, len(stale), "== 0", not stale, detail)


def own_read(client: str, seq: int, key: Hashable, written: int, seen: int, elapsed_s: float) -> str:
    """One entry of a client's log of reads after its own writes (an id for `Plugin.add_id`): the client,
    its read's sequence number, the key, the version it last wrote there, the version the read returned,
    and the seconds since that write was acknowledged."""
    return f"{client}|{seq}|{key}|{written}|{seen}|{elapsed_s:.3f}"


def reads_after_own_writes(log: Iterable[str], name: str = "stale_reads",
                           grace_s: float | None = None) -> InvariantResult:
    """The clients' own log (`own_read` entries, taken during the load, so concurrent races are in it):
    counts the reads that returned a version older than the client's own last write of that key, by key
    and version. With `grace_s`, only such reads more than `grace_s` after the write count (a staleness
    bound, such as an HTTP cache's max-age). A log with no read is a failure: nothing was checked."""
    stale, checked, oldest = [], 0, 0.0
    for entry in log:
        client, _seq, key, written, seen, elapsed = entry.split("|")
        checked += 1
        if int(seen) < int(written) and (grace_s is None or float(elapsed) > grace_s):
            stale.append(f"{key} (client {client}: v{seen} < v{written}, {float(elapsed):.2f} s after)")
            oldest = max(oldest, float(elapsed))
    if not checked:
        return InvariantResult(name, 1, "== 0", False, "no read after a client's own write was logged: nothing "
                               "was checked")
    bound = f" more than {grace_s:g} s" if grace_s is not None else ""
    detail = (f"{len(stale)} of {checked} reads after the client's own write returned an older version{bound} "
              "after it")
    if stale:
        detail += f" (latest {oldest:.2f} s after): {_examples(stale)}"
    return InvariantResult(name, len(stale), "== 0", not stale, detail)
