"""Dealing with Contention's own server-side metrics (beside targets/common.py's); every series
carries `module` and `variant`:

  harness_claims_total                   counter    outcome = won | rejected (sold out) | failed (gave up,
                                                    stale, hold expired, store down)
  harness_claim_conflicts_total          counter    optimistic version conflicts; redis_lock attempts refused
  harness_claim_retries_total            counter    optimistic retries after a conflict
  harness_lock_wait_seconds              histogram  time to get the row lock or the Redis lock
  harness_transaction_seconds            histogram  the claim's write, lock held to commit
  harness_holds_expired_total            counter    redis_hold: unconfirmed holds whose units returned
  harness_stale_writes_rejected_total    counter    redis_lock: writes the fencing token refused
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from targets.common import LATENCY_BUCKETS

CLAIMS = Counter("harness_claims", "Claims by outcome: won | rejected (sold out) | failed (gave up, stale, busy)",
                 ["module", "variant", "outcome"])
CONFLICTS = Counter("harness_claim_conflicts", "Version conflicts (optimistic) or lock attempts refused "
                    "(redis_lock)", ["module", "variant"])
RETRIES = Counter("harness_claim_retries", "Claims retried after a conflict", ["module", "variant"])
LOCK_WAIT = Histogram("harness_lock_wait_seconds", "Time to get the lock (row lock or Redis lock)",
                      ["module", "variant"], buckets=LATENCY_BUCKETS)
TRANSACTION = Histogram("harness_transaction_seconds", "Duration of the claim's write (lock held to commit)",
                        ["module", "variant"], buckets=LATENCY_BUCKETS)
HOLDS_EXPIRED = Counter("harness_holds_expired", "Unconfirmed holds that expired; their seats returned",
                        ["module", "variant"])
STALE = Counter("harness_stale_writes_rejected", "Writes refused by the fencing token: the lock had expired",
                ["module", "variant"])
