"""From phase results to the run summary: pure functions, tested without services.

A phase's latency percentiles come from its exact histogram of the module's main request (the one
its claims are about); a variant's summary is the median over its repetitions, and its percentile
spectrum comes from the histograms of all its repetitions added together.
"""

from __future__ import annotations

import statistics

from harness.loadgen.recorder import AGGREGATE, decode, merge, spectrum, summarize

LATENCY_KEYS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")


def phase_latency(exact: dict, request_name: str | None) -> dict:
    entry = exact["requests"].get(request_name or AGGREGATE) or exact["requests"].get(AGGREGATE, {})
    return {k: entry.get(k) for k in LATENCY_KEYS}


def exact_window(exact: dict) -> float:
    """Seconds from the first measured request's (intended) start to the last one's completion."""
    start = exact.get("first_start") or exact["measured_start"]
    return (exact.get("last_completion") or exact.get("measured_end") or exact["end"]) - start


def phase_counts(exact: dict) -> tuple[int, int, float | None]:
    total = exact["requests"].get(AGGREGATE, {})
    count, failures = total.get("count", 0), total.get("failures", 0)
    window = exact_window(exact)
    return count, failures, (count / window if window > 0 else None)


def timeline(exact: dict) -> list[list[float]]:
    """[seconds since phase start, requests completed in that second], warm-up included."""
    start = exact["start"]
    return [[int(second) - int(start), count] for second, count in exact.get("completions_per_second", {}).items()]


def median(values) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize_variant(phases: list[dict], histograms: list[str]) -> dict:
    """Medians over a variant's repetitions, with invariants summed (a violation anywhere counts)."""
    summary = {
        "repetitions": len(phases),
        "requests": sum(p["requests"] for p in phases),
        "failures": sum(p["failures"] for p in phases),
        "rps": median(p["rps"] for p in phases),
        **{f"{k}_ms": median(p["latency_ms"].get(k) for p in phases) for k in ("p50", "p95", "p99", "p999")},
        "max_ms": max((p["latency_ms"].get("max") or 0 for p in phases), default=None),
        "load_cpu_us_per_request": median(p.get("load_cpu_us_per_request") for p in phases),
    }
    if any(p.get("model") == "open" for p in phases):
        summary["target_rate"] = median(p.get("rate") for p in phases)
        summary["dropped"] = sum(p.get("dropped") or 0 for p in phases)
        summary["schedule_lag_p99_ms"] = median((p.get("schedule_lag_ms") or {}).get("p99") for p in phases)
        summary["service_p99_ms"] = median((p.get("service_latency_ms") or {}).get("p99") for p in phases)
    summary["failure_ratio"] = summary["failures"] / summary["requests"] if summary["requests"] else None
    for key in sorted({k for p in phases for k in p.get("server", {})}):
        summary[key] = median(p["server"].get(key) for p in phases)
    for phase in phases:
        for inv in phase.get("invariants", []):
            summary[inv["name"]] = summary.get(inv["name"], 0) + inv["value"]
    merged = merge(decode(h) for h in histograms if h)
    summary["percentiles"] = spectrum(merged)
    summary["merged"] = {k: v for k, v in summarize(merged).items() if k != "count"}
    return summary


def summarize_run(phases: list[dict], histograms: dict[int, str]) -> dict:
    """{scenario: {variant: summary}} in the order the phases ran."""
    grouped: dict[str, dict[str, list[dict]]] = {}
    for phase in phases:
        if phase.get("error"):
            continue
        group = phase.get("group") or phase["scenario"]
        grouped.setdefault(group, {}).setdefault(phase["variant"], []).append(phase)
    return {scenario: {variant: summarize_variant(ps, [histograms.get(p["index"], "") for p in ps])
                       for variant, ps in variants.items()}
            for scenario, variants in grouped.items()}


def curves(phases: list[dict], bound_ms: float) -> dict:
    """Latency-vs-throughput per variant for each scenario run at several rates, and each knee:
    the highest rate up to which p99 stays within `bound_ms`, nothing is dropped and the achieved
    rate is within 5% of the target."""
    by_scenario: dict[str, dict[str, dict[float, list[dict]]]] = {}
    for phase in phases:
        if not phase.get("error") and phase.get("rate") and phase.get("group", "").startswith(f"{phase['scenario']}@"):
            by_scenario.setdefault(phase["scenario"], {}).setdefault(phase["variant"], {}).setdefault(
                phase["rate"], []).append(phase)
    result = {}
    for scenario, variants in by_scenario.items():
        if all(len(by_rate) < 2 for by_rate in variants.values()):
            continue  # one open-model rate (beside a closed run, say) is a point, not a curve
        result[scenario] = {"bound_ms": bound_ms, "variants": {}}
        for variant, by_rate in variants.items():
            points = [{"rate": rate, "achieved": median(p["rps"] for p in reps),
                       "p99_ms": median(p["latency_ms"].get("p99") for p in reps),
                       "dropped": sum(p.get("dropped") or 0 for p in reps)}
                      for rate, reps in sorted(by_rate.items())]
            result[scenario]["variants"][variant] = {"points": points, "knee_rate": _knee(points, bound_ms)}
    return result


def _knee(points: list[dict], bound_ms: float) -> float | None:
    knee = None
    for point in points:  # rising rates; the first one that does not hold ends the search
        if (point["p99_ms"] is None or point["p99_ms"] > bound_ms or point["dropped"]
                or (point["achieved"] or 0) < 0.95 * point["rate"]):
            break
        knee = point["rate"]
    return knee


def invariant_rows(phases: list[dict]) -> list[dict]:
    """One row per (invariant, scenario, variant), summed over repetitions."""
    rows: dict[tuple, dict] = {}
    for phase in phases:
        for inv in phase.get("invariants", []):
            key = (inv["name"], phase["scenario"], phase["variant"])
            row = rows.setdefault(key, {"name": inv["name"], "scenario": phase["scenario"],
                                        "variant": phase["variant"], "value": 0, "expected": inv["expected"],
                                        "passed": True, "details": []})
            row["value"] += inv["value"]
            row["passed"] = row["passed"] and inv["passed"]
            row["details"].append(inv.get("detail", ""))
    return [{**{k: v for k, v in r.items() if k != "details"}, "detail": "; ".join(r["details"])}
            for r in rows.values()]
