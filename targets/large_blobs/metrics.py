"""Handling Large Blobs' own server-side metrics (beside targets/common.py's); every series carries
`module` and `variant`:

  harness_blob_app_bytes_total            counter    direction = received | sent: HTTP body bytes through the app
  harness_blob_objects_recorded_total     counter    objects recorded after the store had them
  harness_blob_recorded_mib_total         counter    MiB of objects recorded
  harness_blob_completes_refused_total    counter    reason: complete calls refused (object does not match)
  harness_blob_downloads_total            counter    downloads served (streamed or redirected)
  harness_blob_upload_seconds             histogram  upload durations the target sees
  harness_blob_app_cpu_seconds_total      counter    the target process's CPU seconds
  harness_blob_rss_recent_peak_mib        gauge      the target process's peak RSS since the previous scrape, MiB
"""

from __future__ import annotations

import os
import threading
import time

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from targets.large_blobs.store import MIB, MODULE, VARIANTS

APP_BYTES = Counter("harness_blob_app_bytes", "Bytes of HTTP bodies the target received or sent",
                    ["module", "variant", "direction"])
RECORDED = Counter("harness_blob_objects_recorded", "Objects recorded in PostgreSQL after the store had them",
                   ["module", "variant"])
RECORDED_MIB = Counter("harness_blob_recorded_mib", "MiB of objects recorded", ["module", "variant"])
REFUSED = Counter("harness_blob_completes_refused", "complete calls refused: the store's object does not match",
                  ["module", "variant", "reason"])
DOWNLOADS = Counter("harness_blob_downloads", "Downloads served (streamed or redirected)", ["module", "variant"])
UPLOAD_SECONDS = Histogram("harness_blob_upload_seconds", "Upload durations the target sees (proxy: the stream; "
                           "presigned, multipart: from init to complete)", ["module", "variant"],
                           buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


class ProcessCollector:
    """The target's CPU seconds and its RSS, labelled with every variant: a phase runs one variant at a
    time, so a phase's ratio of CPU to MiB selects its own. RSS is sampled every 50 ms by a thread (a
    scrape each second would miss a short peak); each scrape reports the highest sample since the
    previous scrape and starts a new interval. It is not a high-water mark of the process's life: an
    earlier phase's peak cannot hide this phase's growth (the spec reads its rise over each window)."""

    def __init__(self, interval_s: float = 0.05, sampler: bool = True) -> None:
        self.interval_s = interval_s
        self.recent_peak = self._rss()
        self.lock = threading.Lock()
        if sampler:
            threading.Thread(target=self._sample_forever, daemon=True, name="rss-sampler").start()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def sample(self) -> None:
        rss = self._rss()
        with self.lock:
            self.recent_peak = max(self.recent_peak, rss)

    def take_peak(self) -> int:
        """The highest RSS since the last call (or the start), and a new interval from the current RSS."""
        rss = self._rss()
        with self.lock:
            peak, self.recent_peak = max(self.recent_peak, rss), rss
        return peak

    def _sample_forever(self) -> None:
        while True:  # a daemon thread of the target process: ends with it
            self.sample()
            time.sleep(self.interval_s)

    def collect(self):
        times = os.times()
        cpu = CounterMetricFamily("harness_blob_app_cpu_seconds", "Target process CPU seconds",
                                  labels=["module", "variant"])
        peak = GaugeMetricFamily("harness_blob_rss_recent_peak_mib", "Target process peak RSS since the previous "
                                 "scrape, MiB", labels=["module", "variant"])
        recent = self.take_peak() / MIB
        for variant in VARIANTS:
            cpu.add_metric([MODULE, variant], times.user + times.system)
            peak.add_metric([MODULE, variant], recent)
        yield cpu
        yield peak


PROCESS = ProcessCollector()
REGISTRY.register(PROCESS)
