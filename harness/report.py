"""Render one run: Markdown and self-contained HTML reports with plots, and rich tables for the CLI.

Everything reads the parsed `run.json` dict. The report is built once as a list of blocks
(heading, verdict, paragraph, table, images, key/value list) and written out as both Markdown
and HTML, so the two always say the same thing.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, PercentFormatter
from rich.table import Table
from rich.text import Text

__all__ = ["compare_markdown", "compare_table", "fmt", "render", "summary_table", "verdict_table"]

MISSING = "–"
STATUS_STYLE = {"pass": "green", "fail": "red", "skipped": "yellow"}
SUMMARY_COLUMNS = (
    ("rps", "rps"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"),
    ("p999_ms", "p99.9 ms"), ("failures", "failures"), ("hit_ratio", "hit ratio"),
    ("db_queries_per_read", "DB queries/read"), ("cpu_ms_per_request", "server CPU ms/req"),
    ("load_cpu_us_per_request", "load-gen CPU us/req"), ("db_queries_per_expiry", "DB queries/expiry"),
    ("target_rate", "target rate/s"), ("dropped", "dropped arrivals"), ("service_p99_ms", "service p99 ms"),
    ("schedule_lag_p99_ms", "schedule lag p99 ms"), ("knee_rate", "knee rate/s"),
)
CURVE_HEADERS = ("variant", "target rate/s", "achieved rate/s", "p99 ms", "dropped", "knee")
COMPARE_METRICS = (
    "rps", "p50_ms", "p95_ms", "p99_ms", "hit_ratio", "db_queries_per_read", "db_queries_per_expiry")
CLAIM_HEADERS = (
    "status", "id", "claim", "expression", "measured", "baseline", "ratio", "threshold", "detail")
INVARIANT_HEADERS = ("status", "invariant", "variant", "value", "expected", "detail")
PHASE_HEADERS = ("#", "scenario", "variant", "rep", "requests", "failures", "rps", "p95 ms", "p99 ms")
NINES = (50.0, 90.0, 99.0, 99.9, 99.99)
HOW_TO_READ = (
    "Every ratio compares variants measured side by side in this one run, on this machine, with phases "
    "interleaved (A B A B) so drift hits every variant alike; warm-up is excluded. Values are medians over "
    "repetitions. Latencies are exact (HdrHistogram, not Locust's rounded buckets) and timed on the load "
    "side, so they include the network and the client. A claim passes when its measured value meets the "
    "threshold; a skipped claim needs a variant or metric this run did not measure and does not count."
)
CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #d0d7de;padding:.25em .6em}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.skipped{color:#9a6700}
p.verdict{font-size:1.2em;padding:.4em .8em;border-radius:4px}p.verdict.pass{background:#dafbe1}
p.verdict.fail{background:#ffebe9}img{max-width:100%}dl{display:grid;grid-template-columns:max-content auto;
gap:.1em 1em}dt{font-weight:600}dd{margin:0}"""


def fmt(value, kind: str = "num") -> str:
    """A value as the report prints it: 1,234 / 30.1 / 2.17x / 93.0% / +10.0% / – for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or MISSING
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "change":
        return f"{value:+.1f}%"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _kind(metric: str) -> str:
    return "percent" if metric == "hit_ratio" else "num"


def _name(run: dict) -> str:
    return run.get("title") or run.get("module") or "run"


def _summary(run: dict) -> dict:
    return run.get("summary") or {}


def _main(run: dict) -> tuple[str, dict]:
    """The scenario the plots show (ycsb, or the first one) and its per-variant summary."""
    scenario = "ycsb" if "ycsb" in _summary(run) else next(iter(_summary(run)), "ycsb")
    return scenario, _summary(run).get(scenario) or {}


def _colors(run: dict) -> dict[str, str]:
    """One color per variant, the same in every plot, in the order the run lists variants."""
    names = list((run.get("parameters") or {}).get("variants") or [])
    for variants in _summary(run).values():
        names += list(variants)
    names += [phase.get("variant") for phase in run.get("phases") or []]
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(n for n in names if n))}


def _passed(run: dict) -> bool:
    if run.get("passed") is not None:
        return bool(run["passed"])
    claims_ok = all(c.get("status") != "fail" for c in run.get("claims") or [])
    return claims_ok and all(i.get("passed") for i in run.get("invariants") or [])


def _verdict_text(run: dict) -> str:
    counts = Counter(c.get("status") for c in run.get("claims") or [])
    invariants = run.get("invariants") or []
    held = sum(1 for i in invariants if i.get("passed"))
    verdict = "PASSED" if _passed(run) else "FAILED"
    return (f"{verdict}: {counts['pass']} claims passed, {counts['fail']} failed, "
            f"{counts['skipped']} skipped; {held}/{len(invariants)} invariants held")


# ---- tables as rows of strings, shared by Markdown, HTML and rich ----

def _claim_rows(run: dict) -> list[list[str]]:
    return [[c.get("status", ""), c.get("id", ""), c.get("sentence", ""), c.get("expression", ""),
             fmt(c.get("measured")), fmt(c.get("baseline")), fmt(c.get("ratio"), "ratio"),
             fmt(c.get("threshold")), c.get("detail") or ""] for c in run.get("claims") or []]


def _invariant_rows(run: dict) -> list[list[str]]:
    return [["pass" if i.get("passed") else "fail", i.get("name", ""), i.get("variant") or MISSING,
             fmt(i.get("value")), i.get("expected", ""), i.get("detail") or ""]
            for i in run.get("invariants") or []]


def _summary_rows(run: dict, scenario: str) -> tuple[list[str], list[list[str]]]:
    variants = _summary(run).get(scenario) or {}
    columns = [(key, label) for key, label in SUMMARY_COLUMNS
               if any(metrics.get(key) is not None for metrics in variants.values())]
    rows = [[variant] + [fmt(metrics.get(key), _kind(key)) for key, _ in columns]
            for variant, metrics in variants.items()]
    return ["variant"] + [label for _, label in columns], rows


def _phase_rows(run: dict) -> list[list[str]]:
    rows = []
    for phase in run.get("phases") or []:
        latency = phase.get("latency_ms") or {}
        rows.append([fmt(phase.get("index")), phase.get("scenario", ""), phase.get("variant", ""),
                     fmt(phase.get("repetition")), fmt(phase.get("requests")), fmt(phase.get("failures")),
                     fmt(phase.get("rps")), fmt(latency.get("p95")), fmt(latency.get("p99"))])
    return rows


def _change(a, b) -> float | None:
    return None if a is None or b is None or a == 0 else (b - a) / a * 100


def _compare(a: dict, b: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["scenario", "variant", "metric", f"A {a.get('run_id')}", f"B {b.get('run_id')}", "B/A"]
    rows = []
    for scenario, variants in _summary(a).items():
        for variant, ma in variants.items():
            mb = (_summary(b).get(scenario) or {}).get(variant) or {}
            for key in COMPARE_METRICS:
                if key in ma and key in mb and (ma[key] is not None or mb[key] is not None):
                    rows.append([scenario, variant, key, fmt(ma[key], _kind(key)), fmt(mb[key], _kind(key)),
                                 fmt(_change(ma[key], mb[key]), "change")])
    claims_a = {c.get("id"): c for c in a.get("claims") or []}
    claims_b = {c.get("id"): c for c in b.get("claims") or []}
    for cid in dict.fromkeys([*claims_a, *claims_b]):
        sa, sb = (claims_a.get(cid) or {}).get("status"), (claims_b.get(cid) or {}).get("status")
        scenario = (claims_a.get(cid) or claims_b.get(cid)).get("scenario") or ""
        rows.append([scenario, "", f"claim {cid}", fmt(sa), fmt(sb), "" if sa == sb else "changed"])
    return headers, rows


# ---- rich ----

def _is_number(cell: str) -> bool:
    return cell == MISSING or re.fullmatch(r"[-+]?[\d,.]+(e[-+]\d+)?[x%]?", cell) is not None


def _rich_table(title: str, headers, rows, text_columns: int) -> Table:
    """The first text_columns are text; the rest are numbers, right-aligned."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < text_columns else "right")
    for row in rows:
        table.add_row(*(Text(cell, style=STATUS_STYLE.get(cell, "")) for cell in row))
    return table


def verdict_table(run: dict) -> Table:
    """The claims with their verdicts: status, id, expression, measured, baseline, ratio, threshold."""
    rows = [[r[0], r[1], *r[3:8]] for r in _claim_rows(run)]
    headers = [h for h in CLAIM_HEADERS if h not in ("claim", "detail")]
    return _rich_table(f"{_name(run)}: {_verdict_text(run)}", headers, rows, 3)


def summary_table(run: dict, scenario: str = "ycsb") -> Table:
    """Per-variant medians of one scenario, with only the metrics this run measured."""
    return _rich_table(f"{_name(run)}: {scenario}", *_summary_rows(run, scenario), 1)


def compare_table(a: dict, b: dict) -> Table:
    """Two runs side by side: shared metrics with the B/A change, then every claim's status in each."""
    title = f"A {a.get('run_id')} vs B {b.get('run_id')}"
    return _rich_table(title, *_compare(a, b), 3)


def compare_markdown(a: dict, b: dict) -> str:
    """compare_table as Markdown."""
    heading = f"## {a.get('module')}: A {a.get('run_id')} vs B {b.get('run_id')}"
    return f"{heading}\n\n{_md_table(*_compare(a, b))}\n"


# ---- plots ----

def _nines(percentile: float) -> float:
    return -math.log10(1 - percentile / 100)


def _percentiles(metrics: dict) -> list[tuple[float, float]]:
    fallback = ((50.0, "p50_ms"), (95.0, "p95_ms"), (99.0, "p99_ms"), (99.9, "p999_ms"))
    points = metrics.get("percentiles") or [(p, metrics.get(key)) for p, key in fallback]
    return [(p, ms) for p, ms in points if p < 100 and ms is not None and ms > 0]


def _finish(ax, title: str, legend: dict | None = None, **labels) -> None:
    ax.set(title=title, **labels)
    ax.set_axisbelow(True)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, **(legend or {}))
    if not (ax.lines or ax.patches):
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.5")


def _percentile_figure(run: dict, colors: dict) -> Figure:
    scenario, variants = _main(run)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for variant, metrics in variants.items():
        if points := _percentiles(metrics):
            xs, ys = zip(*((_nines(p), ms) for p, ms in points), strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, color=colors[variant], label=variant)
    if ax.lines:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks([_nines(p) for p in NINES], [f"{p:g}" for p in NINES])
    _finish(ax, f"Latency percentile spectrum ({scenario})", xlabel="percentile", ylabel="latency (ms)")
    return fig


def _throughput_figure(run: dict, colors: dict) -> Figure:
    phases = [p for p in run.get("phases") or [] if p.get("start") is not None]
    t0 = min((p["start"] for p in phases), default=0.0)
    main = _main(run)[0]
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.add_subplot()
    labelled = set()
    for phase in phases:
        variant, scenario, offset = phase.get("variant"), phase.get("scenario"), phase["start"] - t0
        if phase.get("measured_start") is not None:
            label = None if "warm-up" in labelled else "warm-up (excluded)"
            ax.axvspan(offset, phase["measured_start"] - t0, color="0.88", linewidth=0, label=label)
            labelled.add("warm-up")
        points = [(offset + t, rps) for t, rps, *_ in phase.get("timeline") or [] if rps is not None]
        if points:
            label = variant if scenario == main else f"{variant} ({scenario})"
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=colors.get(variant, "0.5"), linestyle="-" if scenario == main else "--",
                    linewidth=1.2, label=None if label in labelled else label)
            labelled.add(label)
    outside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}
    _finish(ax, "Throughput over the run (shaded: warm-up)", outside, xlabel="seconds since run start",
            ylabel="requests/s")
    return fig


def _bars(ax, names: list[str], values: list, colors: dict, offset=0.0, width=0.6, kind="num", hatch=""):
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        if value is not None:
            bars = ax.bar(i + offset, value, width, color=colors[name], edgecolor="k", lw=0.4, hatch=hatch)
            ax.bar_label(bars, labels=[fmt(value, kind)], fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=15, ha="right")
    pad = max(0.75, (3 - len(names)) / 2)  # one or two variants: narrow bars, not full-width slabs
    ax.set_xlim(-pad, len(names) - 1 + pad)


def _summary_figure(run: dict, colors: dict) -> Figure:
    scenario, variants = _main(run)
    names = list(variants)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    rps_ax, latency_ax = fig.subplots(1, 2)
    _bars(rps_ax, names, [variants[n].get("rps") for n in names], colors)
    for offset, key, hatch in ((-0.2, "p95_ms", ""), (0.2, "p99_ms", "///")):
        _bars(latency_ax, names, [variants[n].get(key) for n in names], colors, offset, 0.4, hatch=hatch)
    latency_ax.legend(handles=[Patch(facecolor="white", edgecolor="black", hatch=h, label=k)
                               for k, h in (("p95", ""), ("p99", "///"))], fontsize=8)
    _finish(rps_ax, f"Throughput ({scenario})", ylabel="requests/s")
    _finish(latency_ax, f"Latency p95 / p99 ({scenario})", ylabel="ms")
    return fig


def _hit_ratio_figure(run: dict, colors: dict) -> Figure:
    scenario, variants = _main(run)
    ratios = {v: m["hit_ratio"] for v, m in variants.items() if m.get("hit_ratio") is not None}
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    _bars(ax, list(ratios), list(ratios.values()), colors, kind="percent")
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _finish(ax, f"Cache hit ratio ({scenario})", ylabel="hits / reads")
    return fig


def _curve_figure(run: dict, colors: dict) -> Figure:
    """p99 against achieved throughput per variant, one panel per swept scenario, knees starred."""
    curves = run["curves"]
    fig = Figure(figsize=(8, 4.5 * len(curves)), layout="constrained")
    for ax, (scenario, curve) in zip(fig.subplots(len(curves), 1, squeeze=False)[:, 0], curves.items(),
                                     strict=True):
        for variant, data in curve["variants"].items():
            points = [(p["achieved"], p["p99_ms"], p["rate"]) for p in data["points"]
                      if p["achieved"] and p["p99_ms"]]
            if not points:
                continue
            xs, ys, rates = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=4, color=colors.get(variant, "0.5"), label=variant)
            for x, y, rate in points:
                if rate == data["knee_rate"]:
                    ax.plot([x], [y], marker="*", markersize=14, color=colors.get(variant, "0.5"))
        ax.axhline(curve["bound_ms"], color="0.4", linestyle="--", linewidth=1,
                   label=f"p99 bound {fmt(curve['bound_ms'])} ms")
        if ax.lines:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        _finish(ax, f"Latency vs throughput, open model ({scenario}); star: knee", xlabel="achieved requests/s",
                ylabel="p99 latency (ms)")
    return fig


def _curve_rows(curve: dict) -> list[list[str]]:
    return [[variant, fmt(p["rate"]), fmt(p["achieved"]), fmt(p["p99_ms"]), fmt(p["dropped"]),
             "knee" if p["rate"] == data["knee_rate"] else ""]
            for variant, data in curve["variants"].items() for p in data["points"]]


def _write_plots(run: dict, plots_dir: Path) -> list[Path]:
    colors = _colors(run)
    figures = {"latency_percentiles.png": _percentile_figure(run, colors),
               "throughput.png": _throughput_figure(run, colors),
               "summary_bars.png": _summary_figure(run, colors)}
    if run.get("curves"):
        figures["latency_vs_throughput.png"] = _curve_figure(run, colors)
    if any(m.get("hit_ratio") is not None for m in _main(run)[1].values()):
        figures["hit_ratio.png"] = _hit_ratio_figure(run, colors)
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(plots_dir / name, dpi=110, metadata={"Software": None})
    return [plots_dir / name for name in figures]


# ---- the document, as Markdown and HTML ----

def _document(run: dict, plot_names: list[str]) -> list[tuple]:
    def table(headers, rows):
        return [("table", list(headers), rows)] if rows else [("p", "None recorded.")]

    title = f"{_name(run)}: run {run.get('run_id')}"
    info = (f"Module {run.get('module')}, started {run.get('created') or MISSING}, finished "
            f"{run.get('finished') or MISSING}, took {fmt(run.get('duration_s'))} s.")
    blocks = [("h", 1, title), ("verdict", _passed(run), _verdict_text(run)), ("p", info),
              ("h", 2, "Claims"), *table(CLAIM_HEADERS, _claim_rows(run)),
              ("h", 2, "Invariants"), *table(INVARIANT_HEADERS, _invariant_rows(run))]
    for scenario in _summary(run):
        blocks += [("h", 2, f"Summary: {scenario}"), *table(*_summary_rows(run, scenario))]
    for scenario, curve in (run.get("curves") or {}).items():
        knees = ", ".join(f"{v} {fmt(d['knee_rate'])}/s" for v, d in curve["variants"].items())
        blocks += [("h", 2, f"Latency vs throughput: {scenario}"),
                   ("p", f"Open model, rising arrival rates. A variant's knee is the highest rate up to which its "
                         f"p99 stays under {fmt(curve['bound_ms'])} ms, nothing is dropped and the achieved rate "
                         f"is within 5% of the target. Knees: {knees}."),
                   *table(CURVE_HEADERS, _curve_rows(curve))]
    blocks += [("h", 2, "Phases"), *table(PHASE_HEADERS, _phase_rows(run))]
    blocks += [("h", 2, "Plots"), ("images", plot_names)]
    for heading, key in (("Parameters", "parameters"), ("Environment", "environment")):
        blocks += [("h", 2, heading), ("kv", [(k, fmt(v)) for k, v in (run.get(key) or {}).items()])]
    return blocks + [("h", 2, "How to read this"), ("p", HOW_TO_READ)]


def _md_cell(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def _md_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows])


def _markdown(blocks: list[tuple]) -> str:
    out = []
    for block in blocks:
        match block:
            case ("h", level, text):
                out.append(f"{'#' * level} {text}")
            case ("verdict", _, text):
                out.append(f"**{text}**")
            case ("p", text):
                out.append(text)
            case ("table", headers, rows):
                out.append(_md_table(headers, rows))
            case ("images", names):
                out += [f"![{name}](plots/{name})" for name in names]
            case ("kv", pairs):
                out.append("\n".join(f"- {k}: {_md_cell(v)}" for k, v in pairs) or MISSING)
    return "\n\n".join(out) + "\n"


def _html_table(headers, rows) -> str:
    def cell(text: str) -> str:
        cls = text if text in STATUS_STYLE else "n" if _is_number(text) else ""
        return f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(map(cell, row)) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html(blocks: list[tuple], images: dict[str, str]) -> str:
    esc, out = html.escape, []
    for block in blocks:
        match block:
            case ("h", level, text):
                out.append(f"<h{level}>{esc(text)}</h{level}>")
            case ("verdict", passed, text):
                out.append(f'<p class="verdict {"pass" if passed else "fail"}">{esc(text)}</p>')
            case ("p", text):
                out.append(f"<p>{esc(text)}</p>")
            case ("table", headers, rows):
                out.append(_html_table(headers, rows))
            case ("images", names):
                out += [f'<figure><img alt="{esc(n)}" src="data:image/png;base64,{images[n]}"></figure>'
                        for n in names]
            case ("kv", pairs):
                items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs)
                out.append(f"<dl>{items}</dl>")
    head = f'<meta charset="utf-8">\n<title>{esc(blocks[0][2])}</title>\n<style>\n{CSS}\n</style>'
    body = "\n".join(out)
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'


def render(run: dict, run_dir: Path) -> list[Path]:
    """Write plots/*.png, report.md and report.html into run_dir; return the paths written."""
    run_dir = Path(run_dir)
    plots = _write_plots(run, run_dir / "plots")
    blocks = _document(run, [p.name for p in plots])
    markdown, page = run_dir / "report.md", run_dir / "report.html"
    markdown.write_text(_markdown(blocks), encoding="utf-8")
    images = {p.name: base64.b64encode(p.read_bytes()).decode("ascii") for p in plots}
    page.write_text(_html(blocks, images), encoding="utf-8")
    return [*plots, markdown, page]
