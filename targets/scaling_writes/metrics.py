"""Scaling Writes' own server-side metrics (beside targets/common.py's).

The target and the consumer process both import this module, so the target's /metrics describes every
family the dashboard reads (the consumer's have samples only in the consumer's own /metrics). Every
series carries `module` and `variant`:

  harness_writes_rows_committed_total           counter    rows committed (new rows only for queued)
  harness_writes_batch_rows                     histogram  rows per flush (batched) / per consumer batch
  harness_writes_flush_seconds                  histogram  one flush: COPY + commit
  harness_writes_flush_failures_total           counter    flushes that failed (their requests got 503)
  harness_writes_produced_total                 counter    queued: events the broker acknowledged
  harness_writes_consumed_total                 counter    queued: records the consumer read (with redeliveries)
  harness_writes_redelivered_total              counter    queued: records skipped as already present
  harness_writes_consumer_lag                   gauge      queued: high watermark minus committed offset
  harness_writes_consumer_catchup_seconds       gauge      queued: the open backlog's age, else the last one's
                                                           length, shown for 5 s after it ended
  harness_writes_consumer_caught_up_total       counter    queued: backlog episodes that ended (caught up)
  harness_writes_visible_delay_seconds          histogram  queued: produce (record timestamp) to row committed
  harness_writes_visible_delay_p95_seconds      gauge      queued: p95 of that delay over the last 5 s
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
SECOND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LABELS = ["module", "variant"]
ROWS = Counter("harness_writes_rows_committed", "Rows committed", LABELS)
BATCH_ROWS = Histogram("harness_writes_batch_rows", "Rows per flush", LABELS, buckets=ROW_BUCKETS)
FLUSH_SECONDS = Histogram("harness_writes_flush_seconds", "One flush: COPY and commit", LABELS,
                          buckets=SECOND_BUCKETS)
FLUSH_FAILURES = Counter("harness_writes_flush_failures", "Flushes that failed", LABELS)
PRODUCED = Counter("harness_writes_produced", "Events the broker acknowledged", LABELS)
CONSUMED = Counter("harness_writes_consumed", "Records the consumer read", LABELS)
REDELIVERED = Counter("harness_writes_redelivered", "Records skipped as already present", LABELS)
LAG = Gauge("harness_writes_consumer_lag", "High watermark minus committed offset, summed", LABELS)
CATCHUP = Gauge("harness_writes_consumer_catchup_seconds", "Open backlog's age, else the last one's length",
                LABELS)
CAUGHT_UP = Counter("harness_writes_consumer_caught_up", "Backlog episodes that ended", LABELS)
VISIBLE = Histogram("harness_writes_visible_delay_seconds", "Produce to row committed", LABELS,
                    buckets=SECOND_BUCKETS)
VISIBLE_P95 = Gauge("harness_writes_visible_delay_p95_seconds", "p95 of the visible delay over the last 5 s", LABELS)
