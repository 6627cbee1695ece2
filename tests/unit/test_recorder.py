import pytest

from harness.loadgen.recorder import AGGREGATE, ExactRecorder, decode, spectrum, summarize


def test_sub_millisecond_latencies_survive():
    r = ExactRecorder()
    r.reset(measured_start=100.0)
    for i in range(1000):
        r.record("GET /x", 0.25 if i < 900 else 0.8, start_time=101.0, failed=False)
    s = summarize(r.histograms["GET /x"])
    assert s["p50"] == pytest.approx(0.25, rel=0.01)
    assert s["p95"] == pytest.approx(0.8, rel=0.01)


def test_warmup_requests_are_left_out_by_start_time():
    r = ExactRecorder()
    r.reset(measured_start=100.0)
    r.record("GET /x", 5.0, start_time=99.9, failed=False)
    r.record("GET /x", 7.0, start_time=100.1, failed=True)
    out = r.results()["requests"]
    assert out["GET /x"]["count"] == 1 and out["GET /x"]["failures"] == 1
    assert out[AGGREGATE]["max"] == pytest.approx(7.0, rel=0.01)


def test_worker_deltas_merge_to_the_same_histogram():
    single, master = ExactRecorder(), ExactRecorder()
    workers = [ExactRecorder(), ExactRecorder()]
    for rec in (single, master, *workers):
        rec.reset(0.0)
    for i in range(2000):
        ms = 0.1 + (i % 97) * 0.37
        single.record("GET /x", ms, 1.0, failed=i % 50 == 0)
        workers[i % 2].record("GET /x", ms, 1.0, failed=i % 50 == 0)
    for w in workers:
        w.tallies["acks"] += 3
        master.add_delta(w.take_delta())
        assert w.histograms == {} and not w.tallies  # a delta is sent once
    a, b = single.results()["requests"]["GET /x"], master.results()["requests"]["GET /x"]
    assert b["count"] == a["count"] == 2000
    assert b["failures"] == a["failures"] == 40
    assert (b["p50"], b["p99"], b["max"]) == (a["p50"], a["p99"], a["max"])
    assert master.tallies["acks"] == 6
    assert master.completions == single.completions
    assert decode(b["hdr"]).get_total_count() == 2000


def test_spectrum_ends_at_max():
    r = ExactRecorder()
    r.reset(0.0)
    for ms in (1, 2, 3, 50):
        r.record("a", ms, 1.0, False)
    points = spectrum(r.aggregate())
    assert points[-1] == [100.0, pytest.approx(50.0, rel=0.01)]
    assert [p for p, _ in points] == sorted(p for p, _ in points)
    assert summarize(ExactRecorder().aggregate()) == {"count": 0}


def test_open_model_latency_counts_from_the_intended_start():
    r = ExactRecorder()
    r.reset(measured_start=100.0)
    # Intended at 101.0, sent 1.5 s late (a stalled server held every user), answered in 2 ms.
    r.record("GET /x", 2.0, start_time=102.5, failed=False, intended_start=101.0)
    r.record("GET /x", 2.0, start_time=101.0, failed=False, intended_start=101.0)
    r.record("GET /x", 2.0, start_time=100.5, failed=False, intended_start=99.9)  # arrived in warm-up
    r.record_lag(101.0, 0.0015)
    out = r.results()
    assert out["requests"]["GET /x"]["count"] == 2
    assert out["requests"]["GET /x"]["max"] == pytest.approx(1502.0, rel=0.01)
    assert out["service"]["GET /x"]["max"] == pytest.approx(2.0, rel=0.01)
    assert out["schedule_lag_ms"]["count"] == 1 and out["schedule_lag_ms"]["max"] == pytest.approx(1.5, rel=0.01)
    worker, master = ExactRecorder(), ExactRecorder()
    worker.reset(0.0)
    worker.record("GET /x", 3.0, 5.0, False, intended_start=4.0)
    worker.record_lag(4.0, 0.002)
    master.add_delta(worker.take_delta())
    assert master.results()["service"]["GET /x"]["count"] == 1 and master.lag.get_total_count() == 1
