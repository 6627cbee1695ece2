"""The consumer's catch-up gauge: an open backlog reads its age (never 0), and only an ended one counts
as caught up, so `crash_catchup` cannot hold on a backlog still open when the window ends."""

from prometheus_client import REGISTRY

from targets.scaling_writes.consumer import LagMonitor

LABELS = {"module": "scaling_writes", "variant": "queued"}


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, LABELS) or 0.0


def test_an_open_backlog_reads_its_age_and_is_not_caught_up():
    monitor, ended = LagMonitor("127.0.0.1:1", caught_up_lag=10), sample("harness_writes_consumer_caught_up_total")
    monitor.track(500, now=100.0)
    monitor.track(800, now=107.5)  # the window could end here: 7.5 s behind, not 0
    assert sample("harness_writes_consumer_catchup_seconds") == 7.5
    assert sample("harness_writes_consumer_caught_up_total") == ended
    monitor.track(3, now=109.0)  # caught up: the episode's length, and one episode ended
    assert sample("harness_writes_consumer_catchup_seconds") == 9.0
    assert sample("harness_writes_consumer_caught_up_total") == ended + 1
    monitor.track(0, now=115.0)  # shown for HOLD_S, then 0
    assert sample("harness_writes_consumer_catchup_seconds") == 0.0
