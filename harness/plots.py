"""The report's plots, from run.json alone: latency spectrum, throughput timeline (warm-up and faults
shaded), grouped bars, one bar chart per metric the spec's presentation names, and
latency-vs-throughput curves of swept scenarios.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, PercentFormatter

from harness import censored
from harness.presentation import colors, fmt, main_group, presentation, summary_of
from harness.record import Run, VariantSummary

NINES = (50.0, 90.0, 99.0, 99.9, 99.99)
FAULT_COLOR = "#f4a6a6"


def _nines(percentile: float) -> float:
    return -math.log10(1 - percentile / 100)


def _percentiles(metrics: VariantSummary) -> list[tuple[float, float]]:
    fallback = ((50.0, "p50_ms"), (95.0, "p95_ms"), (99.0, "p99_ms"), (99.9, "p999_ms"))
    points = metrics.get("percentiles") or [(p, metrics.get(key)) for p, key in fallback]
    return [(p, ms) for p, ms in points if p < 100 and isinstance(ms, int | float) and ms > 0]


def _finish(ax, title: str, legend: dict | None = None, **labels) -> None:
    ax.set(title=title, **labels)
    ax.set_axisbelow(True)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, **(legend or {}))
    if not (ax.lines or ax.patches):
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.5")


def percentile_figure(run: Run, palette: dict) -> Figure:
    group, variants = main_group(run)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for variant, metrics in variants.items():
        if points := _percentiles(metrics):
            xs, ys = zip(*((_nines(p), ms) for p, ms in points), strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, color=palette[variant], label=variant)
    if ax.lines:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks([_nines(p) for p in NINES], [f"{p:g}" for p in NINES])
    _finish(ax, f"Latency percentile spectrum ({group})", xlabel="percentile", ylabel="latency (ms)")
    return fig


def _shade(ax, span: tuple[float, float], color: str, label: str, labelled: set) -> None:
    ax.axvspan(*span, color=color, linewidth=0, alpha=0.6 if color == FAULT_COLOR else 1.0,
               label=None if label in labelled else label)
    labelled.add(label)


def throughput_figure(run: Run, palette: dict) -> Figure:
    """Successful requests/s per phase (failed ones in red), warm-up in grey, faults in red."""
    phases = [p for p in run.phases if p.start is not None]
    t0 = min((p.start for p in phases), default=0.0)
    main = main_group(run)[0]
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.add_subplot()
    labelled: set[str] = set()
    for phase in phases:
        variant, group, offset = phase.variant, phase.group_name, phase.start - t0
        if phase.measured_start is not None:
            _shade(ax, (offset, phase.measured_start - t0), "0.88", "warm-up (excluded)", labelled)
        for fault in phase.faults:
            if fault.begin is not None:
                end = fault.end or phase.end or fault.begin
                _shade(ax, (fault.begin - t0, end - t0), FAULT_COLOR, "fault", labelled)
        points = [(offset + t, ok) for t, ok, *_ in phase.timeline if ok is not None]
        if points:
            label = variant if group == main else f"{variant} ({group})"
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=palette.get(variant, "0.5"), linestyle="-" if group == main else "--",
                    linewidth=1.2, label=None if label in labelled else label)
            labelled.add(label)
        failed = [(offset + t, rest[0]) for t, _, *rest in phase.timeline if rest and rest[0]]
        if failed:
            xs, ys = zip(*failed, strict=True)
            ax.plot(xs, ys, "x", color="#cf222e", markersize=3, label=None if "failed" in labelled else "failed")
            labelled.add("failed")
    outside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}
    _finish(ax, "Successful requests/s over the run (grey: warm-up, red: fault)", outside,
            xlabel="seconds since run start", ylabel="requests/s")
    return fig


def _bars(ax, names: list[str], values: list, palette: dict, offset=0.0, width=0.6, kind="num", hatch=""):
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        span = censored.interval(value)
        if span is None:
            continue
        height = span.lo if span.hi == math.inf else span.hi  # a bound draws as far as it is known
        if not math.isinf(height):
            bars = ax.bar(i + offset, height, width, color=palette[name], edgecolor="k", lw=0.4, hatch=hatch)
            ax.bar_label(bars, labels=[fmt(value, kind)], fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=15, ha="right")
    pad = max(0.75, (3 - len(names)) / 2)  # one or two variants: narrow bars, not full-width slabs
    ax.set_xlim(-pad, len(names) - 1 + pad)


def summary_figure(run: Run, palette: dict) -> Figure:
    group, variants = main_group(run)
    names = list(variants)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    rps_ax, latency_ax = fig.subplots(1, 2)
    _bars(rps_ax, names, [variants[n].get("rps") for n in names], palette)
    for offset, key, hatch in ((-0.2, "p95_ms", ""), (0.2, "p99_ms", "///")):
        _bars(latency_ax, names, [variants[n].get(key) for n in names], palette, offset, 0.4, hatch=hatch)
    latency_ax.legend(handles=[Patch(facecolor="white", edgecolor="black", hatch=h, label=k)
                               for k, h in (("p95", ""), ("p99", "///"))], fontsize=8)
    _finish(rps_ax, f"Successful requests/s ({group})", ylabel="requests/s")
    _finish(latency_ax, f"Latency p95 / p99 ({group})", ylabel="ms")
    return fig


def bar_figure(run: Run, palette: dict, key: str, label: str, kind: str) -> Figure:
    """One metric of the presentation's bar_plots, per variant of the main group."""
    group, variants = main_group(run)
    values = {v: m.get(key) for v, m in variants.items() if m.get(key) is not None}
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    _bars(ax, list(values), list(values.values()), palette, kind=kind)
    if kind == "percent":
        ax.set_ylim(0, 1.08)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _finish(ax, f"{label} ({group})", ylabel=label)
    return fig


def curve_figure(run: Run, palette: dict) -> Figure:
    """p99 against achieved throughput per variant, one panel per swept scenario, knees starred."""
    curves = run.curves
    fig = Figure(figsize=(8, 4.5 * len(curves)), layout="constrained")
    for ax, (group, curve) in zip(fig.subplots(len(curves), 1, squeeze=False)[:, 0], curves.items(), strict=True):
        for variant, data in curve["variants"].items():
            points = [(p["achieved"], p["p99_ms"], p["rate"]) for p in data["points"] if p["achieved"] and p["p99_ms"]]
            if not points:
                continue
            xs, ys, rates = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=4, color=palette.get(variant, "0.5"), label=variant)
            for x, y, rate in points:
                if rate == data["knee_rate"]:
                    ax.plot([x], [y], marker="*", markersize=14, color=palette.get(variant, "0.5"))
        ax.axhline(curve["bound_ms"], color="0.4", linestyle="--", linewidth=1,
                   label=f"p99 bound {fmt(curve['bound_ms'])} ms")
        if ax.lines:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        _finish(ax, f"Latency vs throughput, open model ({group}); star: knee", xlabel="achieved requests/s",
                ylabel="p99 latency (ms)")
    return fig


def line_figure(run: Run, palette: dict, plot: dict) -> Figure:
    """One of the presentation's line_plots: each metric against the x value of the groups the run
    measured, one line per variant (a group or variant not run leaves a gap, not a zero)."""
    groups = summary_of(run)
    fig = Figure(figsize=(8, 3.8 * len(plot["metrics"])), layout="constrained")
    axes = fig.subplots(len(plot["metrics"]), 1, squeeze=False)[:, 0]
    variants = list(dict.fromkeys(v for group, _ in plot["x"] for v in groups.get(group) or {}))
    for ax, (key, label, kind) in zip(axes, plot["metrics"], strict=True):
        for variant in variants:
            values = [(x, metrics.get(key) if (metrics := (groups.get(group) or {}).get(variant)) else None)
                      for group, x in plot["x"]]
            points = [(x, y) for x, y in values if isinstance(y, int | float) and not isinstance(y, bool)]
            if points:
                xs, ys = zip(*sorted(points), strict=True)
                ax.plot(xs, ys, marker="o", markersize=4, color=palette.get(variant, "0.5"), label=variant)
        if plot.get("log_x"):
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if kind == "percent":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        _finish(ax, f"{plot['title']}: {label}", xlabel=plot["x_label"], ylabel=label)
    return fig


def write_plots(run: Run, plots_dir: Path) -> list[Path]:
    palette = colors(run)
    figures = {"latency_percentiles.png": percentile_figure(run, palette),
               "throughput.png": throughput_figure(run, palette),
               "summary_bars.png": summary_figure(run, palette)}
    if run.curves:
        figures["latency_vs_throughput.png"] = curve_figure(run, palette)
    variants = main_group(run)[1]
    for key, label, kind in presentation(run)["bar_plots"]:
        if any(m.get(key) is not None for m in variants.values()):
            figures[f"bars_{key}.png"] = bar_figure(run, palette, key, label, kind)
    for i, plot in enumerate(presentation(run)["line_plots"], start=1):
        figures[f"lines_{i}.png"] = line_figure(run, palette, plot)
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(plots_dir / name, dpi=110, metadata={"Software": None})
    return [plots_dir / name for name in figures]
