"""A realistic synthetic `run.json` dict for tests: Scaling Reads, ycsb + stampede, two repetitions.

`sample_run()` gives a run with passing, failing and skipped claims and some unmeasured (None)
metrics; `sample_run(variants=["direct"], repeat=1)` shrinks it; any other keyword replaces that
top-level key of the run. `passed` follows the claims and invariants unless given.
"""

from __future__ import annotations

from statistics import median

VARIANTS = ("direct", "cache_aside", "cache_aside_singleflight", "noop")
T0 = 1795460000.0
WARMUP_S, MEASURED_S, GAP_S = 5, 20, 2

# Medians on a 2-core machine, roughly: a cache triples throughput and cuts p95 by two thirds.
BASE = {
    "direct": {"rps": 600.0, "p50": 30.0, "p95": 90.0, "p99": 150.0, "hit_ratio": None,
               "db_queries_per_read": 1.0, "cpu_ms_per_request": 0.9},
    "cache_aside": {"rps": 1300.0, "p50": 9.5, "p95": 31.0, "p99": 60.0, "hit_ratio": 0.93,
                    "db_queries_per_read": 0.07, "cpu_ms_per_request": 0.35},
    "cache_aside_singleflight": {"rps": 1280.0, "p50": 9.8, "p95": 32.0, "p99": 58.0, "hit_ratio": 0.93,
                                 "db_queries_per_read": 0.07, "cpu_ms_per_request": 0.36},
    "noop": {"rps": 2400.0, "p50": 2.1, "p95": 6.0, "p99": 11.0, "hit_ratio": None,
             "db_queries_per_read": None, "cpu_ms_per_request": 0.1},
}
STAMPEDE_DB_QUERIES_PER_EXPIRY = {"cache_aside": 9.5, "cache_aside_singleflight": 1.0}


def _latency(base: dict, jitter: float) -> dict:
    p50, p95, p99 = (base[k] * jitter for k in ("p50", "p95", "p99"))
    return {"p50": p50, "p90": p50 + 0.7 * (p95 - p50), "p95": p95, "p99": p99, "p999": p99 * 1.4,
            "max": p99 * 1.8, "mean": p50 * 1.3}


def _phase(index: int, scenario: str, variant: str, repetition: int, start: float) -> dict:
    base = BASE.get(variant, BASE["direct"])
    jitter = 1.0 + (0.03 if repetition % 2 else -0.03)  # repetitions differ a little, deterministically
    rps = base["rps"] / jitter
    latency = _latency(base, jitter)
    timeline = [[0.0, 0.0, None]] + [
        [float(t), rps * min(1.0, t / WARMUP_S), latency["p95"]] for t in range(1, WARMUP_S + MEASURED_S + 1)]
    server = {k: base[k] for k in ("hit_ratio", "db_queries_per_read", "cpu_ms_per_request")}
    if scenario == "stampede":
        server["db_queries_per_expiry"] = STAMPEDE_DB_QUERIES_PER_EXPIRY.get(variant)
    return {"index": index, "scenario": scenario, "variant": variant, "repetition": repetition,
            "start": start, "measured_start": start + WARMUP_S, "end": start + WARMUP_S + MEASURED_S,
            "csv_prefix": f"phases/{index:02d}_{scenario}_{variant}", "requests": round(rps * MEASURED_S),
            "failures": 0, "rps": rps, "latency_ms": latency, "timeline": timeline, "server": server,
            "load_cpu_us_per_request": 250.0}


def _phases(variants, repeat: int) -> list[dict]:
    plan = [("ycsb", v) for v in variants] + [("stampede", v) for v in variants if v.startswith("cache")]
    phases, start = [], T0
    for scenario in ("ycsb", "stampede"):
        for repetition in range(1, repeat + 1):
            for s, variant in plan:
                if s == scenario:
                    phases.append(_phase(len(phases) + 1, scenario, variant, repetition, start))
                    start += WARMUP_S + MEASURED_S + GAP_S
    return phases


def _summary(phases: list[dict]) -> dict:
    summary: dict = {}
    for phase in phases:
        summary.setdefault(phase["scenario"], {}).setdefault(phase["variant"], []).append(phase)
    return {scenario: {variant: _medians(runs) for variant, runs in variants.items()}
            for scenario, variants in summary.items()}


def _med(values):
    values = [v for v in values if v is not None]
    return median(values) if values else None


def _medians(phases: list[dict]) -> dict:
    lat = {k: _med([p["latency_ms"][k] for p in phases]) for k in ("p50", "p90", "p95", "p99", "p999", "max")}
    requests, failures = sum(p["requests"] for p in phases), sum(p["failures"] for p in phases)
    metrics = {"requests": requests, "failures": failures, "failure_ratio": failures / requests,
               "rps": _med([p["rps"] for p in phases]),
               **{f"{k}_ms": lat[k] for k in ("p50", "p95", "p99", "p999", "max")},
               "load_cpu_us_per_request": _med([p["load_cpu_us_per_request"] for p in phases]),
               "percentiles": [[50.0, lat["p50"]], [90.0, lat["p90"]], [99.0, lat["p99"]],
                               [99.9, lat["p999"]], [99.99, lat["max"] * 0.97], [100.0, lat["max"]]]}
    for key in phases[0]["server"]:
        metrics[key] = _med([p["server"][key] for p in phases])
    return metrics


def _ratio_claim(cid, sentence, summary, scenario, variant, metric, op, factor, baseline_variant) -> dict:
    expression = f"{variant} {metric} {op} {factor} x {baseline_variant} {metric}"
    claim = {"id": cid, "sentence": sentence, "expression": expression, "scenario": scenario,
             "measured": None, "baseline": None, "ratio": None, "threshold": factor}
    variants = summary.get(scenario, {})
    missing = [v for v in (variant, baseline_variant) if v not in variants]
    if missing:
        return {**claim, "status": "skipped", "detail": f"variant {missing[0]} was not run"}
    measured, baseline = variants[variant][metric], variants[baseline_variant][metric]
    ratio = measured / baseline
    holds = ratio >= factor if op == ">=" else ratio <= factor
    detail = (f"{variant} {metric} {measured:.4g} = {ratio:.2f} x {baseline_variant} {baseline:.4g} "
              f"(needs {op} {factor})")
    return {**claim, "status": "pass" if holds else "fail", "measured": measured, "baseline": baseline,
            "ratio": ratio, "detail": detail}


def _claims(summary: dict) -> list[dict]:
    ycsb = summary.get("ycsb", {})
    hit_ratio = ycsb.get("cache_aside", {}).get("hit_ratio")
    hit_claim = {"id": "cache_hit_ratio", "expression": "cache_aside hit_ratio >= 0.95",
                 "sentence": "A warm cache serves nearly every read of a skewed workload.",
                 "scenario": "ycsb", "measured": hit_ratio,
                 "baseline": None, "ratio": None, "threshold": 0.95}
    if hit_ratio is None:
        hit_claim |= {"status": "skipped", "detail": "variant cache_aside was not run"}
    else:
        hit_claim |= {"status": "pass" if hit_ratio >= 0.95 else "fail",
                      "detail": f"cache_aside hit_ratio {hit_ratio:.3g} (needs >= 0.95)"}
    return [
        _ratio_claim("cache_throughput", "A cache in front of the database multiplies read throughput.",
                     summary, "ycsb", "cache_aside", "rps", ">=", 2.0, "direct"),
        _ratio_claim("cache_p95", "Cache hits cut tail latency at least in half.",
                     summary, "ycsb", "cache_aside", "p95_ms", "<=", 0.5, "direct"),
        hit_claim,
        _ratio_claim("singleflight_stampede",
                     "Request coalescing turns a stampede on one expired key into one database query.",
                     summary, "stampede", "cache_aside_singleflight", "db_queries_per_expiry", "<=", 0.2,
                     "cache_aside"),
        {"id": "write_through_fresh", "sentence": "Write-through keeps the cache fresh after every write.",
         "expression": "write_through stale_reads == 0", "scenario": "ycsb", "status": "skipped",
         "measured": None, "baseline": None, "ratio": None, "threshold": 0,
         "detail": "variant write_through was not run"},
    ]


def _invariants(variants) -> list[dict]:
    return [{"name": "lost_writes", "variant": v, "value": 0, "expected": "== 0", "passed": True,
             "detail": "412 reviews acknowledged, 412 found in PostgreSQL"} for v in variants if v != "noop"]


def sample_run(variants=VARIANTS, repeat: int = 2, **overrides) -> dict:
    """A complete run dict; keywords other than variants/repeat replace top-level keys."""
    phases = _phases(variants, repeat)
    summary = _summary(phases)
    last = phases[-1]["end"] if phases else T0
    run = {
        "run_id": "20261123T191500Z", "module": "scaling_reads", "title": "Scaling Reads",
        "created": "2026-11-23T19:15:00Z", "finished": "2026-11-23T19:19:10Z", "duration_s": last - T0,
        "parameters": {"variants": list(variants), "profile": "steady", "model": "closed", "users": 32,
                       "duration_s": MEASURED_S, "warmup_s": WARMUP_S, "repeat": repeat,
                       "host": "http://127.0.0.1:18101", "scenarios": ["ycsb", "stampede"],
                       "locust_args": []},
        "environment": {"cpu_count": 2, "cpu_model": "AMD EPYC 7B13", "python": "3.11.7",
                        "locust": "2.47.0", "postgres": "15.18", "redis": "7.0.15", "prometheus": "2.42.0",
                        "git_commit": "abc1234", "git_dirty": False, "platform": "Linux-6.1-x86_64"},
        "phases": phases, "summary": summary, "claims": _claims(summary), "invariants": _invariants(variants),
    }
    run.update(overrides)
    if "passed" not in overrides:
        run["passed"] = (all(c["status"] != "fail" for c in run["claims"])
                         and all(i["passed"] for i in run["invariants"]))
    return run
