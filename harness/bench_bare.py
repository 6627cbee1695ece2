"""Bare Locust, the baseline of `harness bench` (harness/bench.py): one FastHttpUser, one GET, no think
time and nothing of the harness (no plugin, no exact recording, no exporter). The harness's load side
is compared with this, running the same requests with the same users for the same time.

Run by the bench with HARNESS_BENCH_PATH (the path, with `{key}`), HARNESS_BENCH_KEYS (keys are drawn
uniformly from 1..N) and HARNESS_BENCH_NAME (the request's name in Locust's stats).
"""

import os
import random

from locust import FastHttpUser, task

PREFIX, _, SUFFIX = os.environ["HARNESS_BENCH_PATH"].partition("{key}")
KEYS = int(os.environ["HARNESS_BENCH_KEYS"])
NAME = os.environ["HARNESS_BENCH_NAME"]


class Bare(FastHttpUser):
    @task
    def get(self) -> None:
        self.client.get(f"{PREFIX}{random.randint(1, KEYS)}{SUFFIX}", name=NAME)
