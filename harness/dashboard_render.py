"""Draw a captured Grafana dashboard (harness/grafana.py) with matplotlib, laid out as Grafana does.

Each panel sits where its gridPos puts it on Grafana's 24-column grid, under its row's title, with
its title, its unit on the y axis and one legend entry per series (per variant, as the dashboard's
legend formats name them). Time series draw as lines, state timelines as lanes, bar gauges and stats
as bars of the last value. The dashboard's Prometheus annotations (the harness's phases and faults)
shade every time panel. A panel without a sample says so in place. Nothing here knows a module: all
of it comes from the captured JSON.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

__all__ = ["compare_figure", "dashboard_figure", "format_value"]

WIDTH_IN, UNIT_IN = 13.0, 0.34  # the figure's width, and one gridPos height unit
PAD = {"left": 0.8, "right": 0.12, "top": 0.32, "bottom": 0.32}
LANE_PAD_IN = 1.9  # room for the lane or bar names of state timelines and bar gauges  # inches inside each panel's cell
FAULT_COLOR = "#f4a6a6"
LANES = ("state-timeline", "bargauge", "stat", "gauge")
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_IEC = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def _si(value: float, suffix: str = "") -> str:
    for scale, prefix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{suffix}".rstrip()
    return f"{value:.3g} {suffix}".rstrip()


def _bytes(value: float, per: str = "") -> str:
    for scale, name in _IEC:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {name}{per}"
    return f"{value:.3g} B{per}"


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude == 0 or magnitude >= 1:
        return f"{value:.3g} s"
    if magnitude >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def format_value(value: float, unit: str) -> str:
    """A value in a Grafana unit as a person reads it: 0.0021 s -> 2.1 ms, 8388608 bytes -> 8 MiB."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    scaled = {"ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
    if unit == "s" or unit in scaled:
        return _seconds(value * scaled.get(unit, 1.0))
    if unit in ("bytes", "decbytes"):
        return _bytes(value)
    if unit in ("Bps", "binBps", "decBps"):
        return _bytes(value, "/s")
    if unit in ("kbytes", "deckbytes"):
        return _bytes(value * 1024)
    if unit in ("mbytes", "decmbytes"):
        return _bytes(value * 2**20)
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "percent":
        return f"{value:.3g}%"
    suffix = {"reqps": "req/s", "ops": "ops/s", "rps": "rd/s", "wps": "wr/s", "none": "", "short": ""}
    return _si(value, suffix.get(unit, unit))


def _spans(values: list[list[float]], step: float) -> list[tuple[float, float]]:
    """Contiguous runs of samples (no gap over 1.5 steps) as (start, end) in epoch seconds."""
    spans: list[list[float]] = []
    for t, _ in values:
        if spans and t - spans[-1][1] <= step * 1.5:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    return [(a, b + step) for a, b in spans]


def _shade(ax, captured: dict, t0: float, variants: dict) -> None:
    """The dashboard's annotations over a time axis: phases in their variant's colour, faults in red."""
    for note in captured.get("annotations", []):
        for series in note["series"]:
            fault = "fault" in note["name"].lower() or "fault" in series["labels"].get("__name__", "")
            color = FAULT_COLOR if fault else variants.get(series["labels"].get("variant"), "0.5")
            for a, b in _spans(series["values"], captured["step"]):
                ax.axvspan(a - t0, b - t0, color=color, alpha=0.6 if fault else 0.1, linewidth=0, zorder=0)
    for begin, end, _ in captured.get("faults", []):
        ax.axvspan(begin - t0, end - t0, color=FAULT_COLOR, alpha=0.6, linewidth=0, zorder=0)


def _no_data(ax, why: str = "no data") -> None:
    ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="#cf222e", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


STYLES = ("-", "--", ":", "-.")


def _painter(series: list[dict], variants: dict):
    """(colour, line style) of each series of a panel: a series labelled with a variant takes the
    variant's colour, so a variant reads the same in every panel, and its several series (by status,
    by kind) differ by line style; a series without a variant takes a colour no variant has."""
    seen: dict[str, int] = {}
    free = iter([c for c in (f"C{i}" for i in range(10)) if c not in variants.values()] + ["0.4"] * 100)
    styles = {}
    for s in series:
        variant = s["labels"].get("variant")
        if variant in variants:
            styles[id(s)] = (variants[variant], STYLES[seen.get(variant, 0) % len(STYLES)])
            seen[variant] = seen.get(variant, 0) + 1
        else:
            styles[id(s)] = (next(free), "-")
    return lambda s: styles[id(s)]


def _draw_panel(ax, panel: dict, captured: dict, t0: float, variants: dict, ylim=None) -> None:
    series = [s for t in panel["targets"] for s in t["series"] if s["values"]]
    style = _painter(series, variants)
    ax.set_title(panel["title"], fontsize=8.5, loc="left", fontweight="bold")
    ax.tick_params(labelsize=7)
    if not series:
        errors = [t["error"] for t in panel["targets"] if t.get("error")]
        _no_data(ax, "query error (listed below)" if errors else "no data in this window")
        return
    unit = panel["unit"]
    if panel["type"] == "state-timeline":
        for lane, s in enumerate(series):
            bars = [(a - t0, b - a) for a, b in _spans(s["values"], captured["step"])]
            ax.broken_barh(bars, (lane - 0.4, 0.8), color=style(s)[0])
        ax.set_yticks(range(len(series)), [s["name"] for s in series], fontsize=6)
        ax.set_ylim(-0.6, len(series) - 0.4)
        ax.set_xlim(0, captured["end"] - t0)
        ax.grid(True, axis="x", alpha=0.3)
        return
    if panel["type"] in ("bargauge", "stat", "gauge"):
        names = [s["name"] for s in series]
        last = [s["values"][-1][1] for s in series]
        bars = ax.barh(range(len(series)), last, color=[style(s)[0] for s in series])
        ax.bar_label(bars, labels=[format_value(v, unit) for v in last], fontsize=7, padding=2)
        ax.set_yticks(range(len(series)), names, fontsize=7)
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
        ax.margins(x=0.4)
        return
    _shade(ax, captured, t0, variants)
    for s in series:
        xs = [t - t0 for t, _ in s["values"]]
        ys = [v for _, v in s["values"]]
        color, line = style(s)
        ax.plot(xs, ys, linewidth=1.1, color=color, linestyle=line, label=s["name"])
    ax.set_xlim(0, captured["end"] - t0)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.grid(True, alpha=0.3)
    if panel["legend"]:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if len(series) > 4 else 1, framealpha=0.75,
                  handlelength=1.2, borderpad=0.3, labelspacing=0.2)


def _colors(captured: dict) -> dict:
    """A colour per variant, the same in every panel: the run's variants first, in its order (as the
    report's plots colour them), then any other a series is labelled with."""
    seen = sorted({s["labels"]["variant"] for p in captured["panels"] for t in p["targets"]
                   for s in t["series"] if "variant" in s["labels"]})
    variants = dict.fromkeys([*captured.get("run_variants", []), *seen])
    return {v: f"C{i % 10}" for i, v in enumerate(variants)}


def dashboard_figure(captured: dict, title: str = "") -> Figure:
    """The whole dashboard as one figure, panels where their gridPos puts them."""
    panels = captured["panels"]
    bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1) + 1.2
    height = bottom * UNIT_IN
    fig = Figure(figsize=(WIDTH_IN, height))
    fig.text(0.01, 1 - 0.3 / height, title or captured.get("title", ""), fontsize=12, fontweight="bold", va="center")
    t0, variants = captured["start"], _colors(captured)
    for panel in panels:
        g = panel["gridPos"]
        x, y, w, h = g.get("x", 0) * WIDTH_IN / 24, (g.get("y", 0) + 1.2) * UNIT_IN, g.get("w", 12) * WIDTH_IN / 24, \
            g.get("h", 8) * UNIT_IN
        if panel["type"] == "row":
            fig.text(x / WIDTH_IN + 0.005, 1 - (y + h / 2) / height, panel["title"], fontsize=10.5, va="center",
                     color="0.2", fontweight="bold")
            continue
        left = min(LANE_PAD_IN, 0.35 * w) if panel["type"] in LANES else PAD["left"]
        rect = [(x + left) / WIDTH_IN, 1 - (y + h - PAD["bottom"]) / height,
                (w - left - PAD["right"]) / WIDTH_IN, (h - PAD["top"] - PAD["bottom"]) / height]
        ax = fig.add_axes(rect)
        _draw_panel(ax, panel, captured, t0, variants)
    fig.text(0.99, 0.004, "x: seconds since the window's start; shaded: phases (by variant), red: faults",
             fontsize=7, ha="right", color="0.4")
    return fig


def _ylim(panels: list[dict]) -> tuple[float, float] | None:
    values = [v for p in panels for t in p["targets"] for s in t["series"] for _, v in s["values"]
              if not math.isinf(v)]
    if not values:
        return None
    low, high = min(0.0, min(values)), max(values)
    return low, high * 1.08 if high > 0 else 1.0


def compare_figure(a: dict, b: dict, label_a: str, label_b: str) -> Figure:
    """Two captures of one dashboard side by side, panel by panel (A left, B right, same y scale),
    so a workshop sees before and after at the same size."""
    by_key_b = {(p["title"], p["id"]): p for p in b["panels"] if p["type"] != "row"}
    pairs = [(p, by_key_b.get((p["title"], p["id"]))) for p in a["panels"] if p["type"] != "row"]
    pairs += [(None, p) for key, p in by_key_b.items() if key not in {(q["title"], q["id"]) for q, _ in pairs if q}]
    row_in = 2.4
    fig = Figure(figsize=(WIDTH_IN, 1.0 + row_in * len(pairs)))
    grid = fig.add_gridspec(len(pairs), 2, left=0.12, right=0.99, top=1 - 0.9 / fig.get_figheight(),
                            bottom=0.25 / fig.get_figheight(), hspace=0.55, wspace=0.14)
    palette = {**_colors(a), **_colors(b)}
    fig.text(0.01, 1 - 0.3 / fig.get_figheight(), f"A (left): {label_a}    B (right): {label_b}", fontsize=11,
             fontweight="bold", va="center")
    for i, (pa, pb) in enumerate(pairs):
        shared = None if (pa or pb)["type"] in LANES else \
            _ylim([p for p in (pa, pb) if p])
        for j, (panel, captured, label) in enumerate(((pa, a, "A"), (pb, b, "B"))):
            ax = fig.add_subplot(grid[i, j])
            if panel is None:
                ax.set_title(f"{label}: {(pa or pb)['title']}", fontsize=8.5, loc="left")
                _no_data(ax, "not on this run's dashboard")
                continue
            legend = panel["legend"] and j == 0  # B's legend would repeat A's
            _draw_panel(ax, {**panel, "title": f"{label}: {panel['title']}", "legend": legend}, captured,
                        captured["start"], palette, shared)
    return fig


