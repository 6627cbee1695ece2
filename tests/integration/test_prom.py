"""Window queries against the real Prometheus of the stack: counters as differences, gauges reduced."""

import time

import pytest

from harness.prom import Prometheus, with_labels
from harness.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prom(stack) -> Prometheus:
    prom = Prometheus(get_settings().prometheus_url)
    deadline = time.monotonic() + 60
    while prom.value('up{job="prometheus"}', time.time()) is None:  # its first scrape of itself
        assert time.monotonic() < deadline, "Prometheus never scraped itself"
        time.sleep(0.5)
    return prom


def test_a_gauge_is_reduced_over_the_window(prom):
    end = time.time()
    up = with_labels("up", job="prometheus")
    for reduce in ("max", "min", "avg", "p99", "last"):
        assert prom.over_window(up, reduce, end - 5, end) == 1.0, reduce
    assert prom.over_window('up{job="no_such_job"}', "max", end - 5, end) is None
    with pytest.raises(ValueError, match="reduce must be"):
        prom.over_window(up, "median", end - 5, end)


def test_a_counter_increase_over_a_real_window(prom):
    end = time.time()
    samples = 'prometheus_tsdb_head_samples_appended_total{job="prometheus"}'
    assert prom.increase(samples, end - 30, end) >= 0
    assert prom.increase("no_such_counter_total", end - 30, end) is None
