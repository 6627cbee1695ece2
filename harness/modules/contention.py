"""Dealing with Contention: claims on hot rows under six concurrency-control strategies.

The module's one declaration (see docs/adding-a-module.md): the locustfile and the CLI read it;
`targets/contention/` serves the same variants under `/<variant>/events/...`.

Contention is the number of hot seats all users fight over (`--hot-seats`): each phase creates a
fresh event with that many seat rows, each with a large general-admission stock, so every claim is
a real write on a hot row for the whole window (no sell-out turns the phase into cheap rejections).
A sold unit is a numbered seat: (row, unit); a unit handed out twice is a seat sold twice.
"""

from __future__ import annotations

from harness.claims import Claim
from harness.spec import InvariantSpec, Knob, LinePlot, ModuleSpec, Scenario, ServerMetric, Variant
from targets.contention.settings import Settings

SAFE = ("pessimistic", "optimistic", "atomic", "redis_lock", "redis_hold")
CLAIM = "POST /events/[id]/claims"
USERS, DURATION_S, WARMUP_S = 32, 5, 1
SWEEP = (("high", 1), ("seats_4", 4), ("seats_32", 32), ("low", 512))
# paused_holder: every PAUSE_EVERY-th redis_lock holder sleeps its lease (lock_ttl_ms) plus PAST_LEASE_MS inside
# its critical section; the target derives the pause from the lease it runs with, so it always outlasts it.
PAUSE_EVERY, PAST_LEASE_MS = 20, 300
SELLOUT_CAPACITY = 100  # units per row in sellout: 400 sell in well under a second, the rest of the window is sold out
PAUSED_HOLDERS = (Knob(service="contention", name="pause_every", value=PAUSE_EVERY),
                  Knob(service="contention", name="pause_past_lease_ms", value=PAST_LEASE_MS))


def _level(name: str, seats: int, description: str, variants=None, **extra) -> Scenario:
    return Scenario(**{"name": name, "description": description, "variants": variants, "users": USERS,
                       "duration_s": DURATION_S, "warmup_s": WARMUP_S, "options": ("--hot-seats", str(seats)),
                       **extra})


SPEC = ModuleSpec(
    id="contention",
    title="Dealing with Contention",
    port=18103,
    services=("postgres", "redis"),
    settings=Settings,
    variants=(
        Variant(name="naive", sentence="read, check, write in separate statements with no lock: the race, on "
                "purpose (its oversells are counted, not hidden)"),
        Variant(name="pessimistic", sentence="a transaction: SELECT ... FOR UPDATE, then UPDATE; waiters queue on "
                "the row lock"),
        Variant(name="optimistic", sentence="read the version, UPDATE ... WHERE version = v; on a conflict retry with "
                "jittered backoff, up to a bound, then 409"),
        Variant(name="atomic", sentence="one conditional statement: UPDATE ... WHERE sold < capacity RETURNING"),
        Variant(name="redis_lock", sentence="a Redis lock per seat (SET NX PX + token, compare-and-delete release) "
                "around the PostgreSQL write, with a fencing token the write checks"),
        Variant(name="redis_hold", sentence="the booking flow: an atomic Redis hold with a TTL, then a confirm that "
                "writes PostgreSQL; an unconfirmed hold expires and the seat returns"),
    ),
    default_variants=("naive", "pessimistic", "optimistic", "atomic", "redis_lock", "redis_hold"),
    scenarios=(
        # A claim answered 409 is a failure. By design only two variants give up under contention: optimistic
        # when its retries run out, redis_lock when the lock wait does (and when the fence stops a paused
        # holder); every other variant keeps the default 1% budget.
        _level("high", 1, "high contention: 32 users fight over one hot seat",
               error_budgets={"optimistic": 0.5, "redis_lock": 0.2}),
        _level("low", 512, "low contention: 32 users spread over 512 seats"),
        _level("seats_4", 4, "the sweep over hot seats: 32 users on 4",
               error_budgets={"optimistic": 0.1, "redis_lock": 0.1}),
        _level("seats_32", 32, "the sweep over hot seats: 32 users on 32"),
        _level("paused_holder", 1, f"redis_lock, 8 users on one seat, every {PAUSE_EVERY}th lock holder paused "
               f"inside its critical section until {PAST_LEASE_MS} ms past its lease: the fencing token must stop "
               "each stale write", variants=("redis_lock",), error_budgets={"redis_lock": 0.25}, users=8,
               knobs=PAUSED_HOLDERS),
        _level("sellout", 4, f"numbered seats that sell out: {USERS} users on 4 rows of {SELLOUT_CAPACITY} units; once "
               "a row is sold out every claim on it must be answered sold_out, and no row may sell past its capacity",
               duration_s=2, options=("--hot-seats", "4", "--capacity", str(SELLOUT_CAPACITY))),
    ),
    main_scenario="high",
    repeat=1,  # 25 phases: the whole default run stays under 5 minutes
    latency_of=CLAIM,
    server_metrics=(
        ServerMetric(name="retries_per_success", label="retries/success",
                     numerator="harness_claim_retries_total",
                     denominator='harness_claims_total{outcome="won"}'),
        ServerMetric(name="conflicts_per_success", label="conflicts/success",
                     numerator="harness_claim_conflicts_total",
                     denominator='harness_claims_total{outcome="won"}'),
        ServerMetric(name="claims_won", label="claims won", kind="increase",
                     numerator='harness_claims_total{outcome="won"}'),
        ServerMetric(name="claims_rejected", label="rejected (sold out)", kind="increase",
                     numerator='harness_claims_total{outcome="rejected"}'),
        ServerMetric(name="claims_failed", label="failed (gave up)", kind="increase",
                     numerator='harness_claims_total{outcome="failed"}'),
        ServerMetric(name="lock_wait_s", label="mean lock wait", unit="s",
                     numerator="harness_lock_wait_seconds_sum", denominator="harness_lock_wait_seconds_count"),
        ServerMetric(name="transaction_s", label="mean transaction", unit="s",
                     numerator="harness_transaction_seconds_sum", denominator="harness_transaction_seconds_count"),
        # what the store spends per claim won, from PostgreSQL itself (targets/store_cost.py)
        ServerMetric(name="commits_per_claim", label="commits/claim won", numerator="harness_store_commits_total",
                     denominator='harness_claims_total{outcome="won"}'),
        ServerMetric(name="store_cpu_s_per_claim", label="PostgreSQL CPU/claim won", unit="s",
                     numerator="harness_store_cpu_seconds_total", denominator='harness_claims_total{outcome="won"}'),
        ServerMetric(name="holds_expired", label="holds expired", kind="increase",
                     numerator="harness_holds_expired_total"),
        ServerMetric(name="stale_writes_rejected", label="stale writes rejected", kind="increase",
                     numerator="harness_stale_writes_rejected_total"),
    ),
    invariants=(
        InvariantSpec(name="double_sold", sentence="no seat (row, unit) is in two sales", enforced_for=SAFE),
        InvariantSpec(name="over_capacity", sentence="no row has more sales than its capacity", enforced_for=SAFE),
        InvariantSpec(name="lost_updates", sentence="every row's sold counter equals its sales (a lost update is a "
                      "future oversell)", enforced_for=SAFE),
        InvariantSpec(name="answers_without_one_row", sentence="every 2xx claim answer matches exactly one sale, "
                      "by request id", enforced_for=SAFE),
        InvariantSpec(name="unanswered_rows", sentence="no sale exists whose request was not answered 2xx",
                      enforced_for=SAFE),
        InvariantSpec(name="held_and_sold", sentence="redis_hold: no seat is both held in Redis and sold in "
                      "PostgreSQL to different users", enforced_for=SAFE),
    ),
    columns=("rps", "p50_ms", "p99_ms", "failures", "retries_per_success", "conflicts_per_success", "claims_won",
             "claims_failed", "lock_wait_s", "transaction_s", "holds_expired", "stale_writes_rejected",
             "double_sold", "over_capacity", "lost_updates", "commits_per_claim", "store_cpu_s_per_claim",
             "cpu_ms_per_request"),
    compare=("rps", "p50_ms", "p99_ms", "retries_per_success"),
    progress=("retries_per_success",),
    bar_plots=("retries_per_success",),
    line_plots=(LinePlot(title="Throughput and retries against contention", x_label="hot seats (fewer: more "
                         "contention)", x=SWEEP, metrics=("rps", "retries_per_success"), log_x=True),),
    # Thresholds are set from measured runs on a shared 2-core machine, with margin (see the workshop page and
    # results/reference/contention/). Each sentence states its threshold (tests/unit/test_claim_sentences.py).
    claims=(
        Claim("low_optimistic_rps", "Under low contention optimistic answers at least 0.8x pessimistic's "
              "successful claims/s: with rare conflicts, no lock and no transaction keep up.", "rps", "optimistic",
              ">=", 0.8, baseline="pessimistic", scenario="low"),
        Claim("low_optimistic_cpu", "Under low contention optimistic costs the server at most 1x pessimistic's CPU "
              "per claim.", "cpu_ms_per_request", "optimistic", "<=", 1.0, baseline="pessimistic", scenario="low"),
        Claim("low_retries_rare", "Under low contention optimistic retries at most 0.1 times per claim won.",
              "retries_per_success", "optimistic", "<=", 0.1, scenario="low"),
        Claim("high_retries_rise", "Under high contention optimistic retries at least 1 time per claim won: a "
              "retry storm.", "retries_per_success", "optimistic", ">=", 1.0, scenario="high"),
        Claim("high_optimistic_gives_up", "Under high contention at least 1 optimistic claim exhausts its retries "
              "and is answered 409.", "claims_failed", "optimistic", ">=", 1, scenario="high"),
        Claim("high_optimistic_cpu", "Restarts cost what blocking does not (Agrawal, Carey and Livny): under high "
              "contention optimistic burns at least 1.2x pessimistic's server CPU per claim.", "cpu_ms_per_request",
              "optimistic", ">=", 1.2, baseline="pessimistic", scenario="high"),
        Claim("high_optimistic_vs_atomic", "Under high contention optimistic answers at most 0.75x atomic's "
              "successful claims/s.", "rps", "optimistic", "<=", 0.75, baseline="atomic", scenario="high"),
        Claim("high_optimistic_p99_vs_atomic", "Under high contention optimistic's p99 claim latency is at least "
              "1.5x atomic's: retries and backoff pile up in the tail.", "p99_ms", "optimistic", ">=", 1.5,
              baseline="atomic", scenario="high"),
        Claim("atomic_high", "Under high contention atomic (one conditional statement) answers at least 0.8x "
              "pessimistic's (SELECT FOR UPDATE) successful claims/s.", "rps", "atomic", ">=", 0.8,
              baseline="pessimistic", scenario="high"),
        Claim("atomic_low", "Under low contention atomic answers at least 0.8x pessimistic's successful claims/s.",
              "rps", "atomic", ">=", 0.8, baseline="pessimistic", scenario="low"),
        Claim("atomic_cpu_high", "Under high contention atomic costs the server at most 0.8x pessimistic's CPU per "
              "claim: one statement instead of a locking transaction.", "cpu_ms_per_request", "atomic", "<=", 0.8,
              baseline="pessimistic", scenario="high"),
        Claim("atomic_cpu_low", "Under low contention atomic costs the server at most 0.85x pessimistic's CPU per "
              "claim.", "cpu_ms_per_request", "atomic", "<=", 0.85, baseline="pessimistic", scenario="low"),
        Claim("naive_oversells", "The race is real on this machine: under high contention naive sells at least 1 "
              "seat twice.", "double_sold", "naive", ">=", 1, scenario="high"),
        Claim("naive_overruns", "When numbered seats sell out (sellout), naive sells at least 1 unit past a row's "
              "capacity: its check and its write are apart.", "over_capacity", "naive", ">=", 1, scenario="sellout"),
        Claim("fencing", f"With every {PAUSE_EVERY}th lock holder paused past its lease (paused_holder), the fencing "
              "token rejects at least 1 stale redis_lock write.", "stale_writes_rejected", "redis_lock", ">=", 1,
              scenario="paused_holder"),
        Claim("fencing_safe", "With paused lock holders (paused_holder), redis_lock sells exactly 0 seats twice.",
              "double_sold", "redis_lock", "==", 0, scenario="paused_holder",
              demonstration="restates the invariant double_sold, enforced for redis_lock"),
        *(Claim(f"{variant}_safe_{level}", f"Under {level} contention {variant} sells exactly 0 seats twice.",
                "double_sold", variant, "==", 0, scenario=level,
                demonstration=f"restates the invariant double_sold, enforced for {variant}")
          for level in ("high", "low") for variant in SAFE),
    ),
)
