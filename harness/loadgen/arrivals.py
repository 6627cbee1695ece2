"""The open model: arrivals on a fixed schedule, each served by a free user from a bounded pool.

Locust is a closed model: a user sends its next request only when the previous one answered, so a
stalled server also stalls the load and the stall vanishes from the percentiles (coordinated
omission). Here a scheduler greenlet emits arrivals at the target rate (fixed spacing or Poisson),
whether or not the server keeps up. A user waiting for work takes the next arrival and times its
request from the arrival's *intended* start, as wrk2 does. An arrival that finds no free user is
dropped and counted, never silently lost; the delay between an arrival's intended start and the
moment a user picks it up is the schedule lag.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import gevent
from gevent.queue import Queue

from harness.loadgen.recorder import ExactRecorder

MAX_ARRIVALS = 50_000_000  # a bound on the loop; at 10k/s that is more than an hour


class Arrivals:
    def __init__(self, rate: float, poisson: bool, recorder: ExactRecorder,
                 rate_fraction: Callable[[float], float | None] = lambda elapsed: 1.0,
                 on_drop: Callable[[], None] = lambda: None, seed: int | None = None,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 arrivals/s, got {rate}")
        self.rate, self.poisson, self.recorder = rate, poisson, recorder
        self.rate_fraction, self.on_drop, self.stopping = rate_fraction, on_drop, stopping
        self.rng = random.Random(seed)
        self.queue: Queue = Queue()
        self.waiting = 0
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._schedule)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill()
            self.greenlet = None

    def _schedule(self) -> None:
        start = due = time.time()
        for _ in range(MAX_ARRIVALS):
            fraction = self.rate_fraction(due - start)
            if fraction is None or self.stopping():  # the users are gone: nothing left to serve arrivals
                return
            gevent.sleep(max(0.0, due - time.time()))
            measured = due >= self.recorder.measured_start  # counts follow the histograms' window
            self.recorder.tallies["arrivals"] += measured
            if self.waiting > self.queue.qsize():
                self.queue.put(due)
            else:
                self.recorder.tallies["dropped_arrivals"] += measured
                self.on_drop()
            due += self._gap(self.rate * max(fraction, 1e-6))

    def _gap(self, rate: float) -> float:
        """Seconds until the next arrival: 1/rate, or exponential with mean 1/rate (Poisson arrivals)."""
        return self.rng.expovariate(rate) if self.poisson else 1.0 / rate

    def take(self) -> float:
        """Block until the next arrival; returns its intended start (epoch seconds)."""
        self.waiting += 1
        try:
            due = self.queue.get()
        finally:
            self.waiting -= 1
        self.recorder.record_lag(due, time.time() - due)
        return due
