"""From phase results to the run summary: pure functions, tested without services.

Latency percentiles and throughput are over successful responses only (the load generator keeps
failures out of its histograms and counts them by reason beside). A phase's percentiles come from
the exact histogram of the module's main request (the one its claims are about); a variant's
summary is the median over its repetitions, and its percentile spectrum comes from the histograms
of all its repetitions added together. The summary is keyed by group: "<scenario>" or
"<scenario>.<load>". A swept group's summary is each variant's knee (harness/sweep.py).
"""

from __future__ import annotations

from collections import Counter

from harness import censored
from harness.loadgen.recorder import AGGREGATE, decode, merge, spectrum, summarize
from harness.record import InvariantRow, Phase, VariantSummary

LATENCY_KEYS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
FAULT_METRICS = ("fault_availability", "recovery_s")
median = censored.median


def phase_latency(exact: dict, request_name: str | None) -> dict:
    entry = exact["requests"].get(request_name or AGGREGATE) or exact["requests"].get(AGGREGATE, {})
    return {k: entry.get(k) for k in LATENCY_KEYS}


def request_metrics(exact: dict, metrics) -> dict:
    """Each RequestMetric's successful requests/s over the exact window, and their percentiles (None when
    none succeeded: unmeasured, never 0)."""
    values, window = {}, exact_window(exact)
    for metric in metrics:
        entry = exact["requests"].get(metric.request) or {}
        count = entry.get("count", 0)
        values[f"{metric.name}_rps"] = count / window if count and window > 0 else None
        for key in ("p50", "p95", "p99"):
            values[f"{metric.name}_{key}_ms"] = entry.get(key) if count else None
    return values


def exact_window(exact: dict) -> float:
    """Seconds from the first measured request's (intended) start to the last one's completion."""
    start = exact.get("first_start") or exact["measured_start"]
    return (exact.get("last_completion") or exact["end"]) - start


def phase_counts(exact: dict) -> dict:
    """Successes, failures by reason, the failed share of all attempts, successful requests/s."""
    total = exact["requests"].get(AGGREGATE, {})
    count, failures = total.get("count", 0), total.get("failures", 0)
    window, attempts = exact_window(exact), count + failures
    return {"requests": count, "failures": failures, "errors": dict(total.get("errors") or {}),
            "failure_ratio": failures / attempts if attempts else None,
            "rps": count / window if attempts and window > 0 else None}


def timeline(exact: dict) -> list[list[float]]:
    """[seconds since phase start, successful, failed] per second of completions, warm-up included."""
    start, failed = int(exact["start"]), {int(k): v for k, v in (exact.get("failures_per_second") or {}).items()}
    return [[int(second) - start, count - failed.get(int(second), 0), failed.get(int(second), 0)]
            for second, count in exact.get("completions_per_second", {}).items()]


def summarize_variant(phases: list[Phase], histograms: list[str]) -> VariantSummary:
    """Medians over a variant's repetitions, with failures and invariants summed (a violation anywhere
    counts)."""
    requests, failures = sum(p.requests for p in phases), sum(p.failures for p in phases)
    errors = sum((Counter(p.errors or {}) for p in phases), Counter())
    summary = {
        "repetitions": len(phases), "requests": requests, "failures": failures, "errors": dict(errors),
        "failure_ratio": failures / (requests + failures) if requests + failures else None,
        "rps": median(p.rps for p in phases),
        **{f"{k}_ms": median(p.latency_ms.get(k) for p in phases) for k in ("p50", "p95", "p99", "p999")},
        "max_ms": max((p.latency_ms["max"] for p in phases if p.latency_ms.get("max") is not None), default=None),
        "load_cpu_us_per_request": median(p.load_cpu_us_per_request for p in phases),
    }
    if any(p.model == "open" for p in phases):
        summary["target_rate"] = median(p.rate for p in phases)
        summary["dropped"] = sum(p.dropped or 0 for p in phases)
        summary["schedule_lag_p99_ms"] = median((p.schedule_lag_ms or {}).get("p99") for p in phases)
        summary["service_p99_ms"] = median((p.service_latency_ms or {}).get("p99") for p in phases)
    for key in sorted({k for p in phases for k in p.server}):
        summary[key] = median(p.server.get(key) for p in phases)
    for key in FAULT_METRICS:
        if any(p.has(key) for p in phases):
            summary[key] = median(p.get(key) for p in phases)
    for phase in phases:
        for inv in phase.invariants:
            summary[inv.name] = summary.get(inv.name, 0) + inv.value
    merged = merge(decode(h) for h in histograms if h)
    summary["percentiles"] = spectrum(merged)
    summary["merged"] = {k: v for k, v in summarize(merged).items() if k != "count"}
    return VariantSummary.model_validate(summary)


def summarize_run(phases: list[Phase], histograms: dict[int, str],
                  curves: dict | None = None) -> dict[str, dict[str, VariantSummary]]:
    """{group: {variant: summary}} in the order the phases ran; swept groups carry each knee."""
    grouped: dict[str, dict[str, list[Phase]]] = {}
    for phase in phases:
        if not phase.error:
            grouped.setdefault(phase.group_name, {}).setdefault(phase.variant, []).append(phase)
    summary = {}
    for group, variants in grouped.items():
        if group in (curves or {}):
            summary[group] = {v: _swept(ps, curves[group]["variants"].get(v) or {}) for v, ps in variants.items()}
        else:
            summary[group] = {v: summarize_variant(ps, [histograms.get(p.index, "") for p in ps])
                              for v, ps in variants.items()}
    return summary


def _swept(phases: list[Phase], curve: dict) -> VariantSummary:
    requests, failures = sum(p.requests for p in phases), sum(p.failures for p in phases)
    return VariantSummary(repetitions=len({p.repetition for p in phases}), requests=requests, failures=failures,
                          failure_ratio=failures / (requests + failures) if requests + failures else None,
                          knee_rate=curve.get("knee_rate"))


def invariant_rows(phases: list[Phase]) -> list[InvariantRow]:
    """One row per (invariant, group, variant), summed over repetitions; a violation the variant does
    not claim (`enforced` False, decided when the result was recorded) is a finding."""
    rows: dict[tuple, InvariantRow] = {}
    details: dict[tuple, list[str]] = {}
    for phase in phases:
        for inv in phase.invariants:
            key = (inv.name, phase.group_name, phase.variant)
            row = rows.setdefault(key, InvariantRow(name=inv.name, scenario=phase.group_name, variant=phase.variant,
                                                    value=0, expected=inv.expected, passed=True,
                                                    enforced=inv.enforced, detail=""))
            row.value += inv.value
            row.passed = row.passed and inv.passed
            details.setdefault(key, []).append(inv.detail)
    for key, row in rows.items():
        row.detail = "; ".join(filter(None, details[key]))
    return list(rows.values())
