"""Multi-step Processes' own server-side metrics (beside targets/common.py's); every series
carries `module` and `variant`:

  harness_ms_orders_total              counter    orders by final outcome: completed | compensated | failed |
                                                  unfinished (the answer came before a final state)
  harness_ms_steps_total               counter    participant steps run (forward steps and compensations)
  harness_ms_compensations_total       counter    compensations that undid a step (a refund, a release)
  harness_ms_order_seconds             histogram  from the request to the order's final state
  harness_ms_in_doubt_resolved_total   counter    two_phase: prepared transactions found with no coordinator
                                                  call alive, by `decision` (commit | rollback)
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MODULE = "multi_step"
ORDERS = Counter("harness_ms_orders", "Orders by outcome", ["module", "variant", "outcome"])
STEPS = Counter("harness_ms_steps", "Participant steps run", ["module", "variant"])
COMPENSATIONS = Counter("harness_ms_compensations", "Compensations that undid a step", ["module", "variant"])
ORDER_SECONDS = Histogram("harness_ms_order_seconds", "Request to final state", ["module", "variant"],
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
IN_DOUBT = Counter("harness_ms_in_doubt_resolved", "In-doubt prepared transactions resolved",
                   ["module", "variant", "decision"])
OUTCOMES = ("completed", "compensated", "failed", "unfinished")


def zero_series(variants) -> None:
    """Every series exists from the start (at 0), so ratios and dashboards read 0, not nothing."""
    for variant in variants:
        for metric in (STEPS, COMPENSATIONS, ORDER_SECONDS):
            metric.labels(MODULE, variant)
        for outcome in OUTCOMES:
            ORDERS.labels(MODULE, variant, outcome)
        for decision in ("commit", "rollback"):
            IN_DOUBT.labels(MODULE, variant, decision)
