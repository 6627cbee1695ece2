"""Scaling Reads' own server-side metrics (beside targets/common.py's); every series carries `module`
and `variant`:

  harness_cache_lookups_total            counter    result = hit | miss | coalesced (lookups Redis answered)
  harness_cache_invalidations_total      counter    reason = write | expire | flush
  harness_cache_errors_total             counter    op = get | set | delete: cache operations that failed,
                                                    or were skipped while the breaker was open
  harness_db_queries_total               counter    kind = read | write
  harness_db_write_seconds_total         counter    seconds spent in write transactions on the primary
  harness_replica_reads_total            counter    server = primary | replica: where replica variants' reads went
  harness_replica_lag_bytes              gauge      WAL the replica has not replayed (primary LSN - replay LSN)
  harness_replica_lag_seconds            gauge      how long ago the primary wrote the oldest WAL the replica
                                                    has not replayed (LSN samples every 0.1 s; 0 when caught up)
                                                    both: the worst sample of the last second
  harness_replica_replay_cpu_seconds_total counter  CPU of the replica's WAL replay (its startup process, /proc;
                                                    embedded stack only)
  (the lag gauges carry the variant label of each replica variant, one value: the spec selects by variant)
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CACHE_LOOKUPS = Counter("harness_cache_lookups", "Cache lookups by result", ["module", "variant", "result"])
CACHE_INVALIDATIONS = Counter("harness_cache_invalidations", "Cache keys removed", ["module", "variant", "reason"])
CACHE_ERRORS = Counter("harness_cache_errors", "Cache operations that failed or were skipped (breaker open)",
                       ["module", "variant", "op"])
DB_QUERIES = Counter("harness_db_queries", "Database statements executed", ["module", "variant", "kind"])
DB_WRITE_SECONDS = Counter("harness_db_write_seconds", "Seconds spent in write transactions", ["module", "variant"])
REPLICA_READS = Counter("harness_replica_reads", "Reads of replica variants by the server that answered",
                        ["module", "variant", "server"])
REPLICA_LAG_BYTES = Gauge("harness_replica_lag_bytes", "WAL bytes the replica has not replayed", ["module", "variant"])
REPLICA_LAG_SECONDS = Gauge("harness_replica_lag_seconds", "Age of the oldest WAL the replica has not replayed",
                            ["module", "variant"])
REPLICA_REPLAY_CPU = Counter("harness_replica_replay_cpu_seconds", "CPU seconds of the replica's WAL replay process",
                             ["module", "variant"])
