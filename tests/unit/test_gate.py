"""The gate, without services or clocks: error budgets, fault schedules and fault metrics, run verdicts."""

import pytest

from harness import censored, gate
from harness.claims import Claim
from harness.faults import FaultSchedule, fault_metrics
from harness.record import Phase, Run
from harness.spec import Fault
from harness.summary import phase_counts, summarize_run, timeline

T = 1_800_000_000


def phase(index, variant, requests=1000, failures=0, group="ycsb", errors=None, step=None, faults=()) -> Phase:
    attempts = requests + failures
    return Phase.model_validate({
            "index": index, "scenario": group.split(".")[0], "group": group, "variant": variant, "repetition": 1,
            "requests": requests, "failures": failures, "errors": errors or {}, "step": step,
            "failure_ratio": failures / attempts if attempts else None, "error_budget": 0.01,
            "rps": requests / 10, "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0},
            "server": {}, "invariants": [], "faults": list(faults)})


def run_of(claims, invariants=(), error=None) -> Run:
    return Run.model_validate({"run_id": "r", "module": "m", "claims": list(claims), "invariants": list(invariants),
                               **({"error": error} if error else {})})


def test_a_phase_over_budget_invalidates_the_claims_that_read_it():
    phases = [phase(1, "direct"), phase(2, "cache_aside", requests=500, failures=500, errors={"503": 500})]
    invalid = gate.invalid_reads(phases)
    (reason,) = invalid[("ycsb", "cache_aside")]
    assert reason == "phase 2 (ycsb/cache_aside rep 1): 50.0% of 1,000 requests failed (503 x500), " \
                     "over its 1% error budget"
    assert ("ycsb", "direct") not in invalid
    summary = summarize_run(phases, {})
    claims = [Claim("fast", "s", "rps", "cache_aside", ">=", 0.1, baseline="direct", scenario="ycsb"),
              Claim("direct_fast", "s", "rps", "direct", ">=", 10, scenario="ycsb")]
    verdicts = gate.verdicts(claims, summary, phases)
    assert [v.status for v in verdicts] == ["invalid", "held"]
    assert "over its 1% error budget" in verdicts[0].detail
    assert not gate.passed(Run(run_id="r", module="m", claims=verdicts))


def test_a_variant_within_its_own_budget_keeps_its_claims_while_another_over_the_scenarios_loses_them():
    """Budgets are per phase, as planned (Scenario.budget(variant)): optimistic may fail 30% by design under
    high contention, where 2% failures of pessimistic are over the scenario's 1%."""
    retrying = phase(1, "optimistic", requests=700, failures=300, errors={"409": 300}, group="high")
    retrying = retrying.model_copy(update={"error_budget": 0.5})
    locking = phase(2, "pessimistic", requests=980, failures=20, errors={"409": 20}, group="high")
    invalid = gate.invalid_reads([retrying, locking])
    assert list(invalid) == [("high", "pessimistic")] and "over its 1% error budget" in invalid[("high",
                                                                                                 "pessimistic")][0]


def test_a_failing_variant_does_not_win_on_throughput():
    """Throughput and latency count successes only: failing fast earns nothing."""
    exact = {"start": T, "measured_start": T + 1, "end": T + 11, "first_start": T + 1, "last_completion": T + 11,
             "requests": {"Aggregated": {"count": 400, "failures": 600, "errors": {"503": 600}}}}
    counts = phase_counts(exact)
    assert counts == {"requests": 400, "failures": 600, "errors": {"503": 600}, "failure_ratio": 0.6, "rps": 40.0}
    nothing = {**exact, "requests": {"Aggregated": {"count": 0, "failures": 0}}}
    assert phase_counts(nothing)["rps"] is None and phase_counts(nothing)["failure_ratio"] is None


def test_sweep_failures_end_the_climb_instead_of_invalidating():
    assert gate.invalid_reads([phase(1, "direct", failures=900, group="sweep", step=3)]) == {}


def test_a_fault_that_did_not_happen_invalidates():
    fault = {"service": "redis", "action": "kill", "planned_at_s": 6, "duration_s": 5, "begin": None, "end": None,
             "error": "fault_begin kill redis: StackError: the harness does not own redis"}
    (reason,) = gate.invalid_reads([phase(1, "cache_aside", group="outage", faults=[fault])])[("outage",
                                                                                               "cache_aside")]
    assert "fault kill redis did not happen as declared" in reason and "does not own redis" in reason


def test_passed_needs_every_claim_measured_and_every_enforced_invariant():
    held = {"id": "c", "status": "held"}
    assert gate.passed(run_of([held, {"id": "d", "status": "not run"}]))
    for status in ("failed", "unmeasured", "invalid"):
        assert not gate.passed(run_of([held, {"id": "d", "status": status}]))
    finding = {"name": "stale_entries", "passed": False, "enforced": False}
    assert gate.passed(run_of([held], [finding]))  # a finding does not fail the run
    assert not gate.passed(run_of([held], [{**finding, "enforced": True}]))
    assert not gate.passed(run_of([held], error="KeyboardInterrupt"))


# ---- faults: the schedule, driven by explicit times ------------------------------------------

class Stack:
    def __init__(self, fail_begin=False):
        self.calls, self.fail_begin = [], fail_begin

    def begin(self, service, action):
        if self.fail_begin:
            raise RuntimeError("not ours")
        self.calls.append(("begin", service, action))

    def end(self, service, action):
        self.calls.append(("end", service, action))


KILL_REDIS = (Fault(service="redis", action="kill", at_s=6, duration_s=5),)


def schedule(stack, clock_values, faults=KILL_REDIS):
    clock = iter(clock_values)
    return FaultSchedule(faults, stack.begin, stack.end, lambda: next(clock))


def test_a_fault_begins_at_its_second_and_lasts_its_duration():
    stack = Stack()
    plan = schedule(stack, [T + 6.2, T + 11.3])
    plan.tick(T + 100)  # no measured start yet: nothing happens
    plan.start(T)
    plan.tick(T + 5.9)
    assert stack.calls == []
    plan.tick(T + 6.1)
    assert stack.calls == [("begin", "redis", "kill")] and plan.active
    plan.tick(T + 11.1)  # 5 s after the planned time, but it really began at 6.2
    assert len(stack.calls) == 1
    plan.tick(T + 11.25)
    assert stack.calls[-1] == ("end", "redis", "kill") and not plan.active
    (record,) = plan.finish()
    assert record == {"service": "redis", "action": "kill", "planned_at_s": 6, "duration_s": 5,
                      "begin": T + 6.2, "end": T + 11.3, "error": None}


def test_finish_ends_a_fault_still_on_and_explains_one_that_never_began():
    stack = Stack()
    plan = schedule(stack, [T + 6.0, T + 8.0])
    plan.start(T)
    plan.tick(T + 6.0)
    (record,) = plan.finish()  # the phase ended (or broke) mid-fault: the service must come back
    assert stack.calls[-1] == ("end", "redis", "kill") and record["end"] == T + 8.0
    never = schedule(Stack(), [])
    never.start(T)
    assert never.finish()[0]["error"] == "the phase ended before the fault's time"
    assert schedule(Stack(), []).finish()[0]["error"] == "the load generator never reported its start"


def test_a_fault_the_stack_refuses_is_recorded_not_raised():
    plan = schedule(Stack(fail_begin=True), [])
    plan.start(T)
    plan.tick(T + 7)
    (record,) = plan.finish()
    assert record["begin"] is None and record["error"] == "fault_begin kill redis: RuntimeError: not ours"


# ---- fault metrics from synthetic per-second series ------------------------------------------

def series(ok: dict[int, int], failed: dict[int, int]):
    completions = {str(T + s): ok.get(s, 0) + failed.get(s, 0) for s in sorted({*ok, *failed})}
    return completions, {str(T + s): n for s, n in failed.items()}


def outage(ok, failed, begin=6.0, end=11.0):
    completions, failures = series(ok, failed)
    fault = {"service": "redis", "action": "kill", "begin": T + begin, "end": T + end, "error": None}
    return fault_metrics([fault], completions, failures, T, T + 20)


def test_availability_and_recovery():
    ok = {s: 100 for s in range(20)}
    ok.update({6: 50, 7: 40, 8: 40, 9: 40, 10: 40, 11: 60, 12: 70, 13: 90})
    failed = {6: 10, 11: 2}
    metrics = outage(ok, failed)
    assert metrics["fault_availability"] == pytest.approx(270 / 282)  # seconds 6..11
    assert metrics["recovery_s"] == 2.0  # second 13: 90 >= 80% of 100 and no failure


def test_recovery_is_censored_when_the_window_ends_first():
    ok = {s: 100 for s in range(6)} | {s: 10 for s in range(6, 20)}
    metrics = outage(ok, {})
    assert metrics["fault_availability"] == 1.0
    assert metrics["recovery_s"] == censored.ge(9.0)  # seconds 11..19 were looked at, none recovered


def test_no_completion_in_the_fault_is_no_availability():
    ok = {s: 100 for s in range(20) if not 6 <= s <= 11}  # a frozen server completes nothing while frozen
    metrics = outage(ok, {})
    assert metrics["fault_availability"] is None and metrics["recovery_s"] == 1.0


def test_fault_metrics_need_a_fault_that_happened_and_the_failure_series():
    completions, failures = series({s: 10 for s in range(20)}, {})
    undone = {"service": "redis", "action": "kill", "begin": None, "end": None, "error": "refused"}
    assert fault_metrics([undone], completions, failures, T, T + 20) == {}
    done = {**undone, "begin": T + 6, "end": T + 11, "error": None}
    assert fault_metrics([done], completions, None, T, T + 20) == {"fault_availability": None, "recovery_s": None}


def test_timeline_splits_successes_and_failures():
    exact = {"start": T + 0.4, "completions_per_second": {str(T): 5, str(T + 1): 7},
             "failures_per_second": {str(T + 1): 2}}
    assert timeline(exact) == [[0, 5, 0], [1, 5, 2]]
