"""Scaling Reads' own server-side metrics (beside targets/common.py's); every series carries `module`
and `variant`:

  harness_cache_lookups_total            counter    result = hit | miss | coalesced (lookups Redis answered)
  harness_cache_invalidations_total      counter    reason = write | expire | flush
  harness_cache_errors_total             counter    op = get | set | delete: cache operations that failed,
                                                    or were skipped while the breaker was open
  harness_db_queries_total               counter    kind = read | write
"""

from __future__ import annotations

from prometheus_client import Counter

CACHE_LOOKUPS = Counter("harness_cache_lookups", "Cache lookups by result", ["module", "variant", "result"])
CACHE_INVALIDATIONS = Counter("harness_cache_invalidations", "Cache keys removed", ["module", "variant", "reason"])
CACHE_ERRORS = Counter("harness_cache_errors", "Cache operations that failed or were skipped (breaker open)",
                       ["module", "variant", "op"])
DB_QUERIES = Counter("harness_db_queries", "Database statements executed", ["module", "variant", "kind"])
