"""The invariant machinery and the pure comparisons, on explicit inputs (the stores' side is in
tests/integration/test_invariants.py)."""

import pytest

from harness.loadgen.invariants import (
    Invariants,
    Quiescence,
    own_read,
    reads_after_own_writes,
    stale_entries,
    wait_until,
    writes_by_id,
)
from harness.modules.scaling_reads import SPEC
from harness.spec import InvariantResult


class FakeClock:
    """Time that moves only when the code under test sleeps: no real waiting in unit tests."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_writes_by_id_sees_a_loss_and_a_duplicate_that_counts_would_cancel():
    acknowledged = {"a", "b", "c"}
    stored = {"a": 1, "b": 2, "x": 1}  # c lost, b twice, x stored but never acknowledged: 4 rows for 3 acks
    lost, duplicate = writes_by_id(acknowledged, stored)
    assert (lost.name, lost.value, lost.passed) == ("lost_writes", 1, False)
    assert (duplicate.name, duplicate.value, duplicate.passed) == ("duplicate_writes", 1, False)
    assert "c" in lost.detail and "b" in duplicate.detail and "1 extra rows" in duplicate.detail
    assert "1 stored but never acknowledged" in lost.detail and "x" in lost.detail


def test_writes_by_id_holds_on_the_healthy_case():
    lost, duplicate = writes_by_id({"a", "b"}, {"a": 1, "b": 1})
    assert lost.passed and duplicate.passed and lost.value == duplicate.value == 0
    unacknowledged_only = writes_by_id({"a"}, {"a": 1, "late": 1})  # reported, not a failure
    assert all(r.passed for r in unacknowledged_only) and "late" in unacknowledged_only[0].detail


def test_stale_entries_names_the_oldest_differences():
    rows = {1: {"price": 10, "count": 3}, 2: {"price": 20, "count": 5}, 3: {"price": 30, "count": 0}}
    entries = {1: {"price": 10, "count": 3}, 2: {"price": 21, "count": 5}, 3: {"price": 30, "count": 1},
               4: {"price": 1, "count": 1}}
    result = stale_entries(entries, rows, ("price", "count"), ages={2: 3.0, 3: 42.0}, unreadable=2)
    assert (result.name, result.value, result.passed) == ("stale_entries", 3, False)
    assert result.detail.index("3: count 1 != 0 (age 42.0 s)") < result.detail.index("2: price 21 != 20")
    assert "4: no such row" in result.detail and "2 entries unreadable" in result.detail
    healthy = stale_entries({1: {"price": 10, "count": 3}}, rows, ("price", "count"))
    assert healthy.passed and healthy.value == 0


def test_reads_after_own_writes_sees_a_concurrent_stale_read_by_key_and_version():
    """Client a wrote v5 of key 7; another client's write (v6) came in between, so a's read of v6 is
    fresh; client b's read of v3 after its own v4 is the concurrent race: stale. Key 9's read of v2 is
    not by the client that wrote it, so it is not in a's log and is not counted."""
    log = {own_read("a", 1, 7, 5, 5, 0.01), own_read("a", 2, 7, 5, 6, 0.2),
           own_read("b", 1, 7, 4, 3, 0.05), own_read("c", 1, 9, 2, 2, 0.0)}
    result = reads_after_own_writes(log)
    assert (result.value, result.passed) == (1, False)
    assert "1 of 4" in result.detail and "client b: v3 < v4" in result.detail


def test_reads_after_own_writes_with_a_staleness_bound():
    log = {own_read("a", 1, 7, 5, 4, 0.5), own_read("a", 2, 7, 5, 4, 7.5)}
    bounded = reads_after_own_writes(log, "edge_staleness", grace_s=6.0)
    assert (bounded.name, bounded.value, bounded.passed) == ("edge_staleness", 1, False)
    assert "7.50 s after" in bounded.detail and "more than 6 s" in bounded.detail
    assert reads_after_own_writes({own_read("a", 1, 7, 5, 4, 0.5)}, grace_s=6.0).passed


def test_reads_after_own_writes_with_nothing_logged_is_a_failure():
    result = reads_after_own_writes(set())
    assert not result.passed and "nothing was checked" in result.detail


def test_wait_until_is_bounded():
    clock = FakeClock()
    assert not wait_until(lambda: False, 5.0, interval_s=0.5, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(5.0)
    answers = iter([False, False, True])
    assert wait_until(lambda: next(answers), 5.0, clock=clock, sleep=clock.sleep)


def test_quiescence_needs_the_same_fingerprint_twice():
    clock = FakeClock()
    values = iter([1, 2, 2, 2])
    settle = Quiescence(lambda: next(values), interval_s=0.5, sleep=clock.sleep)
    assert not settle() and settle() and clock.now == pytest.approx(1.0)


def test_registration_refuses_a_name_the_spec_does_not_declare():
    registry = Invariants(SPEC)
    with pytest.raises(ValueError, match="no_such_invariant.*not declared in the scaling_reads spec"):
        registry.register("no_such_invariant")
    with pytest.raises(ValueError, match="name the invariants"):
        registry.register()


def test_results_carry_enforced_from_the_spec_and_passed_stays_the_truth():
    registry = Invariants(SPEC)
    registry.register("stale_entries")(lambda ctx: [InvariantResult("stale_entries", 2, "== 0", False, "2 stale")])
    (naive,) = registry.run(None, "cache_aside")
    (leased,) = registry.run(None, "cache_aside_lease")
    assert naive["passed"] is False and naive["enforced"] is False  # cache_aside: the finding, not a failure
    assert leased["passed"] is False and leased["enforced"] is True
    assert set(naive) == {"name", "value", "expected", "passed", "detail", "enforced"}


def test_a_check_that_cannot_settle_raises_or_strays_fails_its_invariants():
    registry, calls = Invariants(SPEC), []
    registry.register("stale_entries", settle=lambda ctx: False, settle_timeout_s=0.01)(calls.append)
    registry.register("lost_writes", "duplicate_writes")(lambda ctx: 1 / 0)
    registry.register("stale_reads")(lambda ctx: [InvariantResult("stale_entries", 0, "== 0", True)])
    results = {r["name"]: r for r in registry.run("ctx", "cache_aside_lease")}
    assert calls == []  # never checked an unsettled system
    unsettled = results["stale_entries"]
    assert not unsettled["passed"] and "not quiescent within 0.01 s" in unsettled["detail"]
    assert not results["lost_writes"]["passed"] and "ZeroDivisionError" in results["lost_writes"]["detail"]
    assert not results["duplicate_writes"]["passed"]
    assert not results["stale_reads"]["passed"] and "undeclared" in results["stale_reads"]["detail"]


def test_a_check_may_decline_a_phase():
    registry = Invariants(SPEC)
    registry.register("stale_reads")(lambda ctx: [])
    assert registry.run(None, "direct") == []
