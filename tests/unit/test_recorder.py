import json

import pytest

from harness.loadgen.recorder import AGGREGATE, ExactRecorder, decode, spectrum, summarize


def test_sub_millisecond_latencies_survive():
    r = ExactRecorder()
    r.reset(measured_start=100.0)
    for i in range(1000):
        r.record("GET /x", 0.25 if i < 900 else 0.8, start_time=101.0)
    s = summarize(r.histograms["GET /x"])
    assert s["p50"] == pytest.approx(0.25, rel=0.01)
    assert s["p95"] == pytest.approx(0.8, rel=0.01)


def test_warmup_requests_are_left_out_by_start_time():
    r = ExactRecorder()
    r.reset(measured_start=100.0)
    r.record("GET /x", 5.0, start_time=99.9)
    r.record("GET /x", 5.0, start_time=99.9, failed="500")
    r.record("GET /x", 7.0, start_time=100.1)
    out = r.results()["requests"]
    assert out["GET /x"]["count"] == 1 and out["GET /x"]["failures"] == 0
    assert out[AGGREGATE]["max"] == pytest.approx(7.0, rel=0.01)


def test_failures_are_counted_by_reason_and_kept_out_of_the_histograms():
    r = ExactRecorder()
    r.reset(measured_start=0.0)
    for _ in range(3):
        r.record("GET /x", 1.0, start_time=10.0)
    r.record("GET /x", 0.05, start_time=10.0, failed="503")  # a fast failure must not improve p50
    r.record("GET /x", 0.05, start_time=10.0, failed="503")
    r.record("POST /y", 9000.0, start_time=11.5, failed="ConnectionError")
    out = r.results()
    x, y, total = out["requests"]["GET /x"], out["requests"]["POST /y"], out["requests"][AGGREGATE]
    assert (x["count"], x["failures"], x["errors"]) == (3, 2, {"503": 2})
    assert x["p50"] == pytest.approx(1.0, rel=0.01) and decode(x["hdr"]).get_total_count() == 3
    assert (y["count"], y["failures"], y["errors"]) == (0, 1, {"ConnectionError": 1})  # only failures: still listed
    assert (total["count"], total["failures"]) == (3, 3)
    assert total["errors"] == {"503": 2, "ConnectionError": 1}
    assert total["max"] == pytest.approx(1.0, rel=0.01)  # the 9 s failure is not a latency
    assert out["completions_per_second"] == {"10": 5, "20": 1}  # successes and failures, by completion second
    assert out["failures_per_second"] == {"10": 2, "20": 1}
    assert out["last_completion"] == pytest.approx(20.5)  # failures still bound the measured window


def test_worker_deltas_merge_to_the_same_histogram():
    single, master = ExactRecorder(), ExactRecorder()
    workers = [ExactRecorder(), ExactRecorder()]
    for rec in (single, master, *workers):
        rec.reset(0.0)
    for i in range(2000):
        ms = 0.1 + (i % 97) * 0.37
        failed = ("500" if i % 3 else "ReadTimeout") if i % 50 == 0 else None
        single.record("GET /x", ms, 1.0 + i / 1000, failed)
        workers[i % 2].record("GET /x", ms, 1.0 + i / 1000, failed)
    for n, w in enumerate(workers):
        w.tallies["acks"] += 3
        w.add_id("written", f"id-{n}")
        w.add_id("written", "id-shared")
        delta = w.take_delta()
        master.add_delta(json.loads(json.dumps(delta)))  # what travels is plain data
        assert w.histograms == {} and not w.tallies and not w.ids and not w.errors  # a delta is sent once
    a, b = single.results()["requests"]["GET /x"], master.results()["requests"]["GET /x"]
    assert b["count"] == a["count"] == 1960
    assert b["failures"] == a["failures"] == 40 and b["errors"] == a["errors"] == {"500": 26, "ReadTimeout": 14}
    assert (b["p50"], b["p99"], b["max"]) == (a["p50"], a["p99"], a["max"])
    assert master.tallies["acks"] == 6
    assert master.ids["written"] == {"id-0", "id-1", "id-shared"}
    assert master.completions == single.completions
    assert master.failures_per_second == single.failures_per_second
    assert decode(b["hdr"]).get_total_count() == 1960


def test_id_sets_include_warmup_writes():
    """Rows written during warm-up are in the store too, so their ids must be remembered."""
    r = ExactRecorder()
    r.reset(measured_start=100.0)
    r.add_id("written", "early")
    assert r.ids == {"written": {"early"}}


def test_spectrum_ends_at_max():
    r = ExactRecorder()
    r.reset(0.0)
    for ms in (1, 2, 3, 50):
        r.record("a", ms, 1.0)
    points = spectrum(r.aggregate())
    assert points[-1] == [100.0, pytest.approx(50.0, rel=0.01)]
    assert [p for p, _ in points] == sorted(p for p, _ in points)
    assert summarize(ExactRecorder().aggregate()) == {"count": 0}


def test_open_model_latency_counts_from_the_intended_start():
    r = ExactRecorder()
    r.reset(measured_start=100.0)
    # Intended at 101.0, sent 1.5 s late (a stalled server held every user), answered in 2 ms.
    r.record("GET /x", 2.0, start_time=102.5, intended_start=101.0)
    r.record("GET /x", 2.0, start_time=101.0, intended_start=101.0)
    r.record("GET /x", 2.0, start_time=100.5, intended_start=99.9)  # arrived in warm-up
    r.record("GET /x", 2.0, start_time=101.0, failed="500", intended_start=101.0)
    r.record_lag(101.0, 0.0015)
    out = r.results()
    assert out["requests"]["GET /x"]["count"] == 2 and out["requests"]["GET /x"]["failures"] == 1
    assert out["requests"]["GET /x"]["max"] == pytest.approx(1502.0, rel=0.01)
    assert out["service"]["GET /x"]["count"] == 2
    assert out["service"]["GET /x"]["max"] == pytest.approx(2.0, rel=0.01)
    assert out["schedule_lag_ms"]["count"] == 1 and out["schedule_lag_ms"]["max"] == pytest.approx(1.5, rel=0.01)
    worker, master = ExactRecorder(), ExactRecorder()
    worker.reset(0.0)
    worker.record("GET /x", 3.0, 5.0, intended_start=4.0)
    worker.record_lag(4.0, 0.002)
    master.add_delta(worker.take_delta())
    assert master.results()["service"]["GET /x"]["count"] == 1 and master.lag.get_total_count() == 1


def test_counted_values_make_the_same_histogram_as_recording_each(monkeypatch):
    """The per-request path only counts values; reading the histograms puts them in. Nothing is lost or
    moved: the histogram encodes byte for byte like one fed value by value (past the pending limit too)."""
    import random

    from harness.loadgen import recorder as rec

    monkeypatch.setattr(rec, "PENDING_LIMIT", 50)  # flushes mid-stream, as a long run with spread latencies does
    rng, r, expected = random.Random(3), ExactRecorder(), rec.new_histogram()
    r.reset(0.0)
    for _ in range(5000):
        ms = rng.choice((0.0004, 0.2, 1.0, 2.5, 17.3, 1e9)) * rng.random() * 3  # below, inside, above the range
        r.record("GET /x", ms, start_time=1.0)
        expected.record_value(min(rec.HIGHEST_US, max(rec.LOWEST_US, round(ms * 1000))))
    assert len(r._pending["GET /x"]) <= 51  # bounded between reads
    assert r.histograms["GET /x"].encode() == expected.encode()
    r.record("GET /x", 3.0, start_time=1.0)  # counted after a read: still found by the next one
    assert r.results()["requests"]["GET /x"]["count"] == 5001


def test_open_model_service_times_are_counted_and_flushed_too():
    r = ExactRecorder()
    r.reset(0.0)
    for _ in range(3):
        r.record("GET /x", 2.0, start_time=10.5, intended_start=10.0)
    service = r.results()["service"]["GET /x"]
    assert service["count"] == 3 and service["p50"] == pytest.approx(2.0, rel=0.01)
    assert r.results()["requests"]["GET /x"]["p50"] == pytest.approx(502.0, rel=0.01)
