"""The load side's request metrics are plain counts turned into metric families at scrape time; what
Prometheus reads must be exactly what prometheus-client's own Counter and Histogram would expose."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from harness.loadgen import exporter

VALUES = (0.0001, 0.00005, 0.001, 0.0011, 0.25, 20.0, 0.0, 10.0)  # on bounds, between, past the last


def lines(text: bytes, prefix: str) -> list[str]:
    return sorted(line for line in text.decode().splitlines() if line.startswith(prefix))


def test_exposition_matches_prometheus_client_metrics():
    metrics, registry = exporter.RequestMetrics(), CollectorRegistry()
    registry.register(metrics)
    reference = CollectorRegistry()
    requests = Counter("harness_load_requests", "x", ["module", "variant", "name", "method"], registry=reference)
    failures = Counter("harness_load_failures", "x", ["module", "variant", "name", "method"], registry=reference)
    latency = Histogram("harness_load_request_duration_seconds", "x", ["module", "variant", "name"],
                        buckets=exporter.LATENCY_BUCKETS, registry=reference)
    observer = exporter.Observer("m", "v", metrics)
    for seconds in VALUES:
        observer.observe("GET /x", "GET", seconds, False)
        requests.labels("m", "v", "GET /x", "GET").inc()
        failures.labels("m", "v", "GET /x", "GET")
        latency.labels("m", "v", "GET /x").observe(seconds)
    for method in ("GET", "POST"):  # failures are requests, never latencies
        observer.observe("GET /x", method, 9.0, True)
        requests.labels("m", "v", "GET /x", method).inc()
        failures.labels("m", "v", "GET /x", method).inc()
    ours, theirs = generate_latest(registry), generate_latest(reference)
    for prefix in ("harness_load_requests_total", "harness_load_failures_total",
                   "harness_load_request_duration_seconds"):
        assert lines(ours, prefix) == lines(theirs, prefix), prefix
    assert 'le="0.0001",module="m",name="GET /x",variant="v"} 3.0' in ours.decode()  # 0, 5e-5 and 1e-4 itself


def test_observers_of_one_series_share_it():
    metrics = exporter.RequestMetrics()
    exporter.Observer("m", "v", metrics).observe("a", "GET", 0.01, False)
    exporter.Observer("m", "v", metrics).observe("a", "GET", 0.01, False)  # the plugin's second observer (test start)
    assert metrics.counts[("m", "v", "a", "GET")] == [2, 0]
