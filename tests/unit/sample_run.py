"""A realistic synthetic `run.json` dict for tests: a cache module, ycsb + stampede, two repetitions.

`sample_run()` gives a run with held, failed, unmeasured and not-run claims, some unmeasured (None)
metrics and a presentation (columns, compare, progress, bar plots) as a spec would store it;
`sample_run(variants=["direct"], repeat=1)` shrinks it; any other keyword replaces that top-level
key of the run. Claims and `passed` are computed by the real gate from the summary unless given.
"""

from __future__ import annotations

from statistics import median

from harness import gate
from harness.claims import Claim
from harness.record import Run

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
PRESENTATION = {
    "main_scenario": "ycsb",
    "columns": [["rps", "rps", "num"], ["p50_ms", "p50 ms", "num"], ["p95_ms", "p95 ms", "num"],
                ["p99_ms", "p99 ms", "num"], ["p999_ms", "p99.9 ms", "num"], ["failures", "failures", "num"],
                ["hit_ratio", "hit ratio", "percent"], ["db_queries_per_read", "DB queries/read", "num"],
                ["cpu_ms_per_request", "server CPU ms/req", "num"],
                ["load_cpu_us_per_request", "load-gen CPU us/req", "num"],
                ["db_queries_per_expiry", "DB queries/expiry", "num"], ["knee_rate", "knee rate/s", "num"]],
    "compare": ["rps", "p50_ms", "p95_ms", "p99_ms", "hit_ratio", "db_queries_per_read", "db_queries_per_expiry"],
    "progress": ["hit_ratio"], "bar_plots": [["hit_ratio", "hit ratio", "percent"]],
    "variants": {v: f"the {v} variant" for v in VARIANTS},
}
CLAIMS = (
    Claim("cache_throughput", "A cache in front of the database multiplies read throughput.",
          "rps", "cache_aside", ">=", 2.0, baseline="direct", scenario="ycsb"),
    Claim("cache_p95", "Cache hits cut tail latency at least in half.",
          "p95_ms", "cache_aside", "<=", 0.5, baseline="direct", scenario="ycsb"),
    Claim("cache_hit_ratio", "A warm cache serves nearly every read of a skewed workload.",
          "hit_ratio", "cache_aside", ">=", 0.95, scenario="ycsb"),
    Claim("singleflight_stampede", "Request coalescing turns a stampede on one expired key into one query.",
          "db_queries_per_expiry", "cache_aside_singleflight", "<=", 0.2, baseline="cache_aside",
          scenario="stampede"),
    Claim("noop_offload", "The floor queries nothing.", "db_queries_per_read", "noop", "<=", 0.1,
          scenario="ycsb"),
    Claim("write_through_fresh", "Write-through keeps the cache fresh after every write.",
          "stale_reads", "write_through", "==", 0, scenario="ycsb"),
)


def _latency(base: dict, jitter: float) -> dict:
    p50, p95, p99 = (base[k] * jitter for k in ("p50", "p95", "p99"))
    return {"p50": p50, "p90": p50 + 0.7 * (p95 - p50), "p95": p95, "p99": p99, "p999": p99 * 1.4,
            "max": p99 * 1.8, "mean": p50 * 1.3}


def _phase(index: int, scenario: str, variant: str, repetition: int, start: float) -> dict:
    base = BASE.get(variant, BASE["direct"])
    jitter = 1.0 + (0.03 if repetition % 2 else -0.03)  # repetitions differ a little, deterministically
    rps = base["rps"] / jitter
    latency = _latency(base, jitter)
    timeline = [[0, 0, 0]] + [[t, round(rps * min(1.0, t / WARMUP_S)), 0] for t in range(1, WARMUP_S + MEASURED_S)]
    server = {k: base[k] for k in ("hit_ratio", "db_queries_per_read", "cpu_ms_per_request")}
    if scenario == "stampede":
        server["db_queries_per_expiry"] = STAMPEDE_DB_QUERIES_PER_EXPIRY.get(variant)
    requests = round(rps * MEASURED_S)
    return {"index": index, "scenario": scenario, "group": scenario, "variant": variant, "repetition": repetition,
            "users": 32, "duration_s": MEASURED_S, "warmup_s": WARMUP_S, "rate": 0.0, "load": "", "step": None,
            "error_budget": 0.01, "start": start, "measured_start": start + WARMUP_S,
            "end": start + WARMUP_S + MEASURED_S, "csv_prefix": f"phases/{index:02d}_{scenario}_{variant}",
            "requests": requests, "failures": 3, "errors": {"503": 2, "ConnectionError": 1},
            "failure_ratio": 3 / (requests + 3), "over_budget": False, "rps": rps, "latency_ms": latency,
            "timeline": timeline, "server": server, "load_cpu_us_per_request": 250.0, "model": "closed",
            "invariants": [], "faults": []}


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
        summary.setdefault(phase["group"], {}).setdefault(phase["variant"], []).append(phase)
    return {group: {variant: _medians(runs) for variant, runs in variants.items()}
            for group, variants in summary.items()}


def _med(values):
    values = [v for v in values if v is not None]
    return median(values) if values else None


def _medians(phases: list[dict]) -> dict:
    lat = {k: _med([p["latency_ms"][k] for p in phases]) for k in ("p50", "p90", "p95", "p99", "p999", "max")}
    requests, failures = sum(p["requests"] for p in phases), sum(p["failures"] for p in phases)
    metrics = {"repetitions": len(phases), "requests": requests, "failures": failures,
               "errors": {"503": 2 * len(phases), "ConnectionError": len(phases)},
               "failure_ratio": failures / (requests + failures), "rps": _med([p["rps"] for p in phases]),
               **{f"{k}_ms": lat[k] for k in ("p50", "p95", "p99", "p999", "max")},
               "load_cpu_us_per_request": _med([p["load_cpu_us_per_request"] for p in phases]),
               "percentiles": [[50.0, lat["p50"]], [90.0, lat["p90"]], [99.0, lat["p99"]],
                               [99.9, lat["p999"]], [99.99, lat["max"] * 0.97], [100.0, lat["max"]]]}
    for key in phases[0]["server"]:
        metrics[key] = _med([p["server"][key] for p in phases])
    return metrics


def _invariants(variants) -> list[dict]:
    return [{"name": "lost_writes", "scenario": "ycsb", "variant": v, "value": 0, "expected": "== 0",
             "passed": True, "enforced": True, "detail": "412 reviews acknowledged, 412 found in PostgreSQL"}
            for v in variants if v != "noop"]


def sample_run(variants=VARIANTS, repeat: int = 2, **overrides) -> dict:
    """A complete run as run.json holds it (tests edit it, then read it with harness.record.load);
    keywords other than variants/repeat replace top-level keys."""
    phases = overrides.pop("phases", None) or _phases(variants, repeat)
    summary = overrides.pop("summary", None) or _summary(phases)
    last = phases[-1]["end"] if phases else T0
    run = {
        "run_id": "20261123T191500Z", "module": "scaling_reads", "title": "Scaling Reads",
        "created": "2026-11-23T19:15:00Z", "finished": "2026-11-23T19:19:10Z", "duration_s": last - T0,
        "parameters": {"variants": list(variants), "profile": "steady", "model": None, "users": None,
                       "duration_s": None, "warmup_s": None, "repeat": repeat, "scenarios": ["ycsb", "stampede"],
                       "locust_args": []},
        "environment": {"cpu_count": 2, "cpu_model": "AMD EPYC 7B13", "python": "3.11.7",
                        "locust": "2.47.0", "postgres": "15.18", "redis": "7.0.15", "prometheus": "2.42.0",
                        "git_commit": "abc1234", "git_dirty": False, "platform": "Linux-6.1-x86_64"},
        "presentation": PRESENTATION, "phases": phases, "summary": summary, "curves": {}, "faults": [],
        "invariants": _invariants(variants),
    }
    typed = Run.model_validate(run)
    run["claims"] = [c.dump() for c in gate.verdicts(CLAIMS, typed.summary, typed.phases)]
    run.update(overrides)
    if "passed" not in overrides:
        run["passed"] = gate.passed(Run.model_validate(run))
    return run
