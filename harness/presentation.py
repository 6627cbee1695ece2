"""How a run is shown, read from the run itself: its spec's presentation, stored in run.json.

The report, the plots and the CLI take columns, compare metrics, the progress line, bar plots and
the main scenario from `run.presentation` (what `ModuleSpec.presentation()` returned when the run
started), so a run re-renders without its module; a run without one gets the generic columns.
"""

from __future__ import annotations

import math

from harness import censored
from harness.record import Run, VariantSummary
from harness.spec import DEFAULT_COLUMNS, GENERIC_METRICS

MISSING = "–"
GENERIC_COMPARE = ("rps", "p50_ms", "p95_ms", "p99_ms")


def fmt(value, kind: str = "num") -> str:
    """A value as the report prints it: 1,234 / 30.1 / 2.17x / 93.0% / +10.0% / < 150 / – for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "censor" in value:
        return censored.describe(value, lambda v: fmt(v, kind))
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or MISSING
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "change":
        return f"{value:+.1f}%"
    if math.isinf(value):
        return "inf"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def presentation(run: Run) -> dict:
    """The run's presentation, or the generic one for a run stored without it."""
    given = run.presentation or {}
    return {"main_scenario": given.get("main_scenario") or "",
            "columns": given.get("columns") or [[k, *GENERIC_METRICS[k]] for k in DEFAULT_COLUMNS],
            "compare": given.get("compare") or list(GENERIC_COMPARE), "progress": given.get("progress") or [],
            "bar_plots": given.get("bar_plots") or [], "line_plots": given.get("line_plots") or [],
            "variants": given.get("variants") or {}}


def metric_format(run: Run, key: str) -> tuple[str, str]:
    """(label, format) of a summary metric, as the run's presentation names it."""
    for name, label, kind in presentation(run)["columns"] + presentation(run)["bar_plots"]:
        if name == key:
            return label, kind
    return GENERIC_METRICS.get(key, (key.replace("_", " "), "num"))


def summary_of(run: Run) -> dict[str, dict[str, VariantSummary]]:
    return run.summary


def main_group(run: Run) -> tuple[str, dict[str, VariantSummary]]:
    """The group the plots show (the main scenario, or its first load; else the first group) and its
    per-variant summary. A swept group has no latencies to plot, so it is never the main one."""
    groups = {g: v for g, v in summary_of(run).items() if g not in run.curves}
    main = presentation(run)["main_scenario"]
    name = next((g for g in groups if g == main or g.split(".")[0] == main), next(iter(groups), ""))
    return name, groups.get(name) or {}


def colors(run: Run) -> dict[str, str]:
    """One color per variant, the same in every plot, in the order the run lists variants."""
    names = list(run.parameters.get("variants") or [])
    for variants in summary_of(run).values():
        names += list(variants)
    names += [phase.variant for phase in run.phases]
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(n for n in names if n))}


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.3g} s"
    return f"{value * 1e3:.3g} ms" if magnitude >= 1e-3 else f"{value * 1e6:.3g} µs"


def _bytes(value: float) -> str:
    for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {name}"
    return f"{value:.3g} B"


def humane(key: str, value, kind: str = "num") -> str:
    """A metric's value as a person reads it, its unit taken from the metric's name: cpu_s_per_mib
    0.000218 -> "0.218 ms CPU per MiB", p99_ms 1500 -> "1.5 s", *_bytes 8388608 -> "8 MiB". A censored
    value, a ratio or a percentage is shown as `fmt` shows it."""
    if not isinstance(value, int | float) or isinstance(value, bool) or kind in ("ratio", "percent", "change") \
            or math.isinf(value) or math.isnan(value):
        return fmt(value, kind)
    head, _, per = key.partition("_per_")
    per = f" per {per.replace('_', ' ').replace('mib', 'MiB').replace('kib', 'KiB')}" if per else ""
    words = head.split("_")
    if words[-1] == "ms":
        return _seconds(value / 1e3) + per
    if words[-1] == "us":
        return _seconds(value / 1e6) + per
    if words[-1] == "s":
        return _seconds(value) + (" CPU" if "cpu" in words else "") + per
    if words[-1] == "bytes":
        return _bytes(value) + per
    if words[-1] == "mib":
        return _bytes(value * 2**20) + per
    return fmt(value, kind) + (f" {head.replace('_', ' ')}{per}" if per else "")
