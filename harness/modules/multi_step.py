"""Multi-step Processes: one order across three participants, as calls in sequence, two-phase commit and an
orchestrated saga, with the coordinator or a participant killed mid-flow.

The module's one declaration (see docs/adding-a-module.md): the locustfile and the CLI read it;
`targets/multi_step/` serves the variants under `/<variant>/orders`. Orders, payments and inventory each
own a database; inventory lives on the second PostgreSQL cluster (`postgres2`), so a two-phase commit is
across two clusters and one of them can be killed while the other serves. A share of orders
(--fail-share) is refused by a participant on purpose (no money on account 0, item 0 sold out): the
refusal after the charge is what a flow must compensate.
"""

from __future__ import annotations

from harness.claims import Claim
from harness.spec import Fault, InvariantSpec, Knob, Load, ModuleSpec, Scenario, ServerMetric, Variant
from targets.multi_step.settings import Settings

ORDER = "POST /orders"
SAFE = ("two_phase", "saga_orchestrated")
DELAY = (Knob(service="multi_step", name="step_delay_ms", value=200),)  # a fault lands mid-flow
OPEN = (Load(name="open", rate=20, users=60),)

SPEC = ModuleSpec(
    id="multi_step",
    title="Multi-step Processes",
    port=18107,
    services=("postgres", "postgres2"),
    settings=Settings,
    variants=(
        Variant(name="naive", sentence="create the order, charge, reserve stock, complete: calls in sequence, each "
                "its own transaction, no compensation (a refused step 3 leaves step 2 done)"),
        Variant(name="two_phase", sentence="one transaction per participant, PREPARE TRANSACTION on each, the "
                "decision logged, then COMMIT PREPARED; in-doubt transactions resolved by recovery (presumed abort)"),
        Variant(name="saga_orchestrated", sentence="a durable DBOS workflow runs the steps and, on a refusal, the "
                "compensation (refund); a killed coordinator resumes each saga from its last completed step"),
    ),
    default_variants=("naive", "two_phase", "saga_orchestrated"),
    scenarios=(
        Scenario(name="steady", description="open model, 20 orders/s, 10 % refused by a participant on purpose",
                 loads=OPEN, duration_s=6, warmup_s=1, error_budget=0.02),
        Scenario(name="saturation", description="closed model, 16 users, no think time: the most orders/s",
                 users=16, duration_s=8, warmup_s=1, error_budget=0.02),
        Scenario(name="hot_item", description="closed model, 16 users, every order on one item: the item's row "
                 "lock is held for the whole flow by two_phase", users=16, duration_s=6, warmup_s=1,
                 error_budget=0.05, options=("--items", "1")),
        Scenario(name="coordinator_kill", description="open model, 20 orders/s, 200 ms between steps; the target "
                 "(the coordinator) is SIGKILLed at 3 s and restarted 2 s later", loads=OPEN, duration_s=20,
                 warmup_s=1, knobs=DELAY, error_budget=0.9,
                 faults=(Fault(service="multi_step", action="kill", at_s=3, duration_s=2),)),
        Scenario(name="participant_kill", description="open model, 20 orders/s; the inventory cluster (postgres2) "
                 "is SIGKILLed at 3 s and restarted 3 s later", loads=OPEN, duration_s=12, warmup_s=1,
                 error_budget=0.9, error_budgets={"two_phase": 1.0},  # it fails by design while a participant is down
                 faults=(Fault(service="postgres2", action="kill", at_s=3, duration_s=3),)),
    ),
    # saturation is measured on request (`--scenarios saturation`): the default run stays near 5 minutes
    default_scenarios=("steady", "hot_item", "coordinator_kill", "participant_kill"),
    main_scenario="steady",
    repeat=1,
    latency_of=ORDER,
    server_metrics=(
        ServerMetric(name="steps_per_order", label="steps/order", numerator="harness_ms_steps_total",
                     denominator="harness_ms_orders_total"),
        ServerMetric(name="compensations_per_order", label="compensations/order",
                     numerator="harness_ms_compensations_total", denominator="harness_ms_orders_total"),
        ServerMetric(name="order_final_s", label="mean request to final state", unit="s",
                     numerator="harness_ms_order_seconds_sum", denominator="harness_ms_order_seconds_count"),
        ServerMetric(name="in_doubt_resolved", label="in-doubt resolved", kind="increase",
                     numerator="harness_ms_in_doubt_resolved_total"),
        ServerMetric(name="unfinished_answers", label="answered before final", kind="increase",
                     numerator='harness_ms_orders_total{outcome="unfinished"}'),
    ),
    invariants=(
        InvariantSpec(name="half_done", sentence="every order is completed (paid and stock reserved) or fully "
                      "undone (neither), and no payment or reservation exists without its order", enforced_for=SAFE),
        InvariantSpec(name="money_conserved", sentence="the balances plus the captured payments equal what the "
                      "accounts were given"),
        InvariantSpec(name="stock_conserved", sentence="no stock below zero, and stock plus reserved units equal "
                      "what the items were given"),
        InvariantSpec(name="prepared_left", sentence="no prepared transaction is left behind after the settle "
                      "(leftovers are rolled back and counted)"),
    ),
    columns=("rps", "p50_ms", "p99_ms", "failures", "steps_per_order", "compensations_per_order", "order_final_s",
             "in_doubt_resolved", "unfinished_answers", "fault_availability", "recovery_s", "half_done",
             "prepared_left", "cpu_ms_per_request"),
    compare=("rps", "p50_ms", "p99_ms"),
    progress=("half_done", "in_doubt_resolved"),
    bar_plots=("half_done",),
    claims=(
        Claim("tpc_hot_item", "With every order on one hot item, two_phase completes at most 0.85x naive's orders/s: "
              "it holds the item's row lock across prepare, decision and commit.", "rps", "two_phase", "<=", 0.85,
              baseline="naive", scenario="hot_item"),
        Claim("naive_half_done", "With a share of orders refused at step 3, naive leaves at least 1 order half-done "
              "(charged, no stock reserved).", "half_done", "naive", ">=", 1, scenario="steady"),
        Claim("naive_half_done_kill", "With the coordinator killed mid-flow, naive leaves at least 1 order "
              "half-done.", "half_done", "naive", ">=", 1, scenario="coordinator_kill"),
        Claim("tpc_in_doubt", "With the coordinator killed between prepare and commit, recovery resolves at least 1 "
              "in-doubt two_phase transaction.", "in_doubt_resolved", "two_phase", ">=", 1,
              scenario="coordinator_kill"),
        Claim("saga_serves_participant_down", "With the inventory cluster down, saga_orchestrated answers at least "
              "0.9 of orders without an error while it lasts (they wait, are accepted, then converge).",
              "fault_availability", "saga_orchestrated", ">=", 0.9, scenario="participant_kill"),
        Claim("saga_latency", "At 20 orders/s saga_orchestrated's p50 order latency is at least 1.5x naive's: a "
              "durable checkpoint per step.", "p50_ms", "saga_orchestrated", ">=", 1.5, baseline="naive",
              scenario="steady"),
        *(Claim(f"{variant}_converges_{scenario}", f"In {scenario} {variant} leaves exactly 0 orders half-done.",
                "half_done", variant, "==", 0, scenario=scenario,
                demonstration=f"restates the invariant half_done, enforced for {variant}")
          for variant in SAFE for scenario in ("coordinator_kill", "participant_kill")),
    ),
)
