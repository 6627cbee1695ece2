"""A Grafana dashboard JSON, read and queried the way Grafana would, without Grafana.

The dashboard is the module's `dashboards/<id>.json`, the file compose's Grafana loads. Its panels
(rows and nested rows included) keep their layout (gridPos), titles, units and legend formats; each
target's PromQL has Grafana's built-in variables ($__rate_interval, $__interval, $__range, ...) and
the dashboard's template variables (module, variant, or any other: from the values given, else the
variable's current value) substituted, then goes to Prometheus's range API over a window. The result,
`capture()`, is plain JSON: a run stores it beside run.json, so its dashboard re-renders after the
stack is gone (harness/dashboard_render.py draws it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from harness.prom import Prometheus, PrometheusError

__all__ = ["capture", "duration_seconds", "iter_panels", "legend", "resolve", "substitute"]

# $__rate_interval, ${__rate_interval}, $__interval_ms, ${__range_s}, ...
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{(__\w+)\}|(__\w+))")
# $name, ${name}, ${name:format} or [[name]] (label_replace's $1 and ${1} are not variables)
_TEMPLATE_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\[\[([A-Za-z_]\w*)\]\]|\$([A-Za-z_]\w*)")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_POINTS = 600  # points per series at most: the step grows with the window (Grafana: max data points)


def duration_seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as "1m", "90s" or "1h30m"."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def iter_panels(panels: list[dict]) -> Iterator[dict]:
    """Every panel, including the ones nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels") or [])


def substitute(expr: str, *, rate_interval: str, interval: str, range_: str,
               variables: dict[str, str] | None = None) -> str:
    """Grafana's built-in variables, then the template variables in `variables`; an unknown one is an error."""
    values = {"__rate_interval": rate_interval, "__interval": interval, "__range": range_,
              "__interval_ms": f"{duration_seconds(interval) * 1000:g}",
              "__range_ms": f"{duration_seconds(range_) * 1000:g}", "__range_s": f"{duration_seconds(range_):g}"}

    def builtin(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"unsupported Grafana variable ${name} in {expr!r}")
        return values[name]

    def template(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        if variables is None or name not in variables:
            raise ValueError(f"dashboard template variable {match.group(0)} cannot be resolved in {expr!r}")
        return variables[name]

    return _TEMPLATE_VARIABLE.sub(template, _GRAFANA_VARIABLE.sub(builtin, expr))


def _format(values: list[str]) -> str:
    """A variable's values as Grafana writes them into PromQL: one value as it is, several as a regex."""
    if len(values) == 1:
        return values[0]
    return "(" + "|".join(re.escape(v) for v in values) + ")"


def resolve(dashboard: dict, given: dict[str, str | list[str]]) -> dict[str, str]:
    """Every template variable's value: the given one (a list means several selected), else the
    dashboard's current selection ($__all: any value), else its first option."""
    resolved = {name: _format([value] if isinstance(value, str) else list(value)) for name, value in given.items()}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable.get("name")
        if not name or name in resolved:
            continue
        current = (variable.get("current") or {}).get("value")
        options = [o.get("value") for o in variable.get("options") or [] if o.get("value")]
        values = current if isinstance(current, list) else [current] if current else options[:1]
        resolved[name] = ".*" if "$__all" in values else _format([str(v) for v in values]) if values else ".*"
    return resolved


def legend(template: str, labels: dict[str, str]) -> str:
    """A series' name by its target's legendFormat, or its labels when there is none (Grafana's auto)."""
    if template and template != "__auto":
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or labels.get("__name__", "value")


def _series(result: list[dict], template: str) -> list[dict]:
    return [{"name": legend(template, s["metric"]), "labels": s["metric"],
             "values": [[float(t), float(v)] for t, v in s["values"] if not math.isnan(float(v))]}
            for s in result]


def _query(prom: Prometheus, expr: str, start: float, end: float, step: float, template: str) -> dict:
    try:
        return {"series": _series(prom.query_range(expr, start, end, step), template)}
    except PrometheusError as exc:
        return {"series": [], "error": str(exc)}


def _panel(panel: dict, row: str) -> dict:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    return {"id": panel.get("id"), "type": panel.get("type", "timeseries"), "title": panel.get("title", ""),
            "row": row, "gridPos": panel.get("gridPos") or {"x": 0, "y": 0, "w": 12, "h": 8},
            "unit": defaults.get("unit") or "", "description": panel.get("description", ""),
            "legend": ((panel.get("options") or {}).get("legend") or {}).get("showLegend", True)}


def capture(dashboard_path: Path, prom: Prometheus, start: float, end: float, variables: dict,
            scrape_interval_s: float = 1.0) -> dict:
    """Every panel's and every Prometheus annotation's series over [start, end] (epoch s), as JSON."""
    dashboard = json.loads(Path(dashboard_path).read_text())
    window = max(1.0, end - start)
    step = max(scrape_interval_s, math.ceil(window / MAX_POINTS))
    rate_interval = f"{math.ceil(max(step + scrape_interval_s, 4 * scrape_interval_s))}s"
    values = resolve(dashboard, variables)
    builtins = {"rate_interval": rate_interval, "interval": f"{math.ceil(step)}s", "range_": f"{math.ceil(window)}s",
                "variables": values}
    panels, row = [], ""
    for panel in iter_panels(dashboard.get("panels", [])):
        if panel.get("type") == "row":
            row = panel.get("title", "")
            panels.append({**_panel(panel, row), "targets": []})
            continue
        entry = {**_panel(panel, row), "targets": []}
        for target in panel.get("targets") or []:
            if target.get("hide") or not target.get("expr"):
                continue
            try:
                expr = substitute(target["expr"], **builtins)
            except ValueError as exc:
                entry["targets"].append({"expr": target["expr"], "series": [], "error": str(exc)})
                continue
            at = (end, end, step) if target.get("instant") else (start, end, step)
            entry["targets"].append({"expr": expr, "legend": target.get("legendFormat", ""),
                                     **_query(prom, expr, *at, target.get("legendFormat", ""))})
        panels.append(entry)
    annotations = []
    for note in dashboard.get("annotations", {}).get("list", []):
        if note.get("expr") and note.get("enable", True):
            try:
                expr = substitute(note["expr"], **builtins)
            except ValueError as exc:
                annotations.append({"name": note.get("name", ""), "series": [], "error": str(exc)})
                continue
            annotations.append({"name": note.get("name", ""), "expr": expr,
                                **_query(prom, expr, start, end, step, note.get("titleFormat", ""))})
    return {"uid": dashboard.get("uid"), "title": dashboard.get("title", ""), "start": start, "end": end,
            "step": step, "variables": values, "panels": panels, "annotations": annotations}


def empty_panels(captured: dict) -> list[tuple[str, str]]:
    """(panel title, why it shows nothing) for every panel without a single sample."""
    empty = []
    for panel in captured.get("panels", []):
        if panel["type"] == "row":
            continue
        errors = [t["error"] for t in panel["targets"] if t.get("error")]
        if not panel["targets"]:
            empty.append((panel["title"], "the panel has no Prometheus query"))
        elif not any(s["values"] for t in panel["targets"] for s in t["series"]):
            why = "; ".join(errors) if errors else "every query returned no samples in the window: " + \
                  " | ".join(t["expr"] for t in panel["targets"])
            empty.append((panel["title"], why))
    return empty
