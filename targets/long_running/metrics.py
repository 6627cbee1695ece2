"""Long-running Tasks' own server-side metrics (beside targets/common.py's).

The target and the workers import this module, so the target's /metrics describes every family the
dashboard reads (the workers' counters have samples only in the workers' own /metrics). Every series
carries `module` and `variant` (sync, pg_queue, redis_queue):

  harness_lr_jobs_enqueued_total          counter    target: jobs accepted (queued variants) or begun (sync)
  harness_lr_jobs_started_total           counter    attempts begun (first tries, retries and redeliveries)
  harness_lr_jobs_completed_total         counter    jobs completed
  harness_lr_jobs_retried_total           counter    failed attempts scheduled for another try
  harness_lr_jobs_dead_lettered_total     counter    jobs moved to the dead-letter table after their last try
  harness_lr_redeliveries_total           counter    attempts begun while an earlier one had never ended
                                                     (its worker died): what the queue did to a killed job
  harness_lr_queue_depth                  gauge      target: jobs accepted and waiting (first try or retry)
  harness_lr_jobs_running                 gauge      target: jobs some worker is running (workers busy)
  harness_lr_start_delay_seconds          histogram  enqueue (or scheduled time) to first start
  harness_lr_completion_seconds           histogram  enqueue to completed
  harness_lr_redelivery_seconds           histogram  an abandoned attempt's last heartbeat to its redelivery
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SECOND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60)
LABELS = ["module", "variant"]
ENQUEUED = Counter("harness_lr_jobs_enqueued", "Jobs accepted", LABELS)
STARTED = Counter("harness_lr_jobs_started", "Attempts begun", LABELS)
COMPLETED = Counter("harness_lr_jobs_completed", "Jobs completed", LABELS)
RETRIED = Counter("harness_lr_jobs_retried", "Failed attempts scheduled for another try", LABELS)
DEAD_LETTERED = Counter("harness_lr_jobs_dead_lettered", "Jobs dead-lettered after their last try", LABELS)
REDELIVERIES = Counter("harness_lr_redeliveries", "Attempts begun over an attempt that never ended", LABELS)
QUEUE_DEPTH = Gauge("harness_lr_queue_depth", "Jobs accepted and waiting to start", LABELS)
RUNNING = Gauge("harness_lr_jobs_running", "Jobs being run by a worker", LABELS)
START_DELAY = Histogram("harness_lr_start_delay_seconds", "Enqueue (or scheduled time) to first start", LABELS,
                        buckets=SECOND_BUCKETS)
COMPLETION = Histogram("harness_lr_completion_seconds", "Enqueue to completed", LABELS, buckets=SECOND_BUCKETS)
REDELIVERY = Histogram("harness_lr_redelivery_seconds", "Abandoned attempt's last heartbeat to its redelivery",
                       LABELS, buckets=SECOND_BUCKETS)
