"""Read the PromQL out of a Grafana dashboard JSON, ready to send to Prometheus.

Used by the config-file unit tests (every query parses) and by the tests that check every panel
returns data after a run. No test functions here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

# $__rate_interval, ${__rate_interval}, $__interval_ms, ${__range_s}, ...
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{(__\w+)\}|(__\w+))")
# Any other $name, ${name} or [[name]]: a dashboard template variable, which cannot be resolved here
# (label_replace's $1 and ${1} are not variables).
_TEMPLATE_VARIABLE = re.compile(r"\$(?:\{[A-Za-z_]\w*(?::\w+)?\}|\[\[[A-Za-z_]\w*\]\]|[A-Za-z_]\w*)")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


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


def substitute(expr: str, *, rate_interval: str, interval: str, range_: str) -> str:
    values = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": range_,
        "__interval_ms": f"{duration_seconds(interval) * 1000:g}",
        "__range_ms": f"{duration_seconds(range_) * 1000:g}",
        "__range_s": f"{duration_seconds(range_):g}",
    }

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"unsupported Grafana variable ${name} in {expr!r}")
        return values[name]

    substituted = _GRAFANA_VARIABLE.sub(replace, expr)
    leftover = _TEMPLATE_VARIABLE.search(substituted)
    if leftover:
        raise ValueError(f"dashboard template variable {leftover.group(0)} cannot be resolved in {expr!r}")
    return substituted


def panel_queries(
    dashboard_path: str | Path,
    rate_interval: str = "1m",
    *,
    interval: str | None = None,
    range_: str = "15m",
) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel and every Prometheus annotation,
    Grafana's variables substituted.

    `$__rate_interval` becomes `rate_interval`, `$__interval` becomes `interval` (default: the same),
    `$__range` becomes `range_` (default: the dashboard's default time range, 15 minutes).
    """
    dashboard = json.loads(Path(dashboard_path).read_text())
    interval = interval or rate_interval
    queries = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if expr:
                sub = substitute(expr, rate_interval=rate_interval, interval=interval, range_=range_)
                queries.append((panel.get("title", ""), sub))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):  # Prometheus-backed annotations, such as the phase markers
            sub = substitute(annotation["expr"], rate_interval=rate_interval, interval=interval, range_=range_)
            queries.append((f"annotation: {annotation.get('name', '')}", sub))
    return queries


def panels_without_data(dashboard_path: Path, start: float, end: float, faults: bool = False,
                        variants: list[str] | None = None) -> list[str]:
    """Every panel query of a dashboard that returns no sample between start and end (epoch seconds)
    from the harness's Prometheus; each module's end-to-end test calls it after a short real run. The
    fault annotation (`harness_fault`) has data only in a run with faults: it is checked when `faults`.
    With `variants` (those the run ran), a query pinned to other variants (`variant="x"`) is not asked:
    it can have no data, and the run of that variant checks it."""
    import re

    import requests

    from harness.settings import get_settings

    empty = []
    for title, expr in panel_queries(dashboard_path, rate_interval="5s"):
        if "harness_fault" in expr and not faults:
            continue
        pinned = set(re.findall(r'variant="([A-Za-z0-9_]+)"', expr))
        if variants is not None and pinned and not pinned & set(variants):
            continue
        body = requests.get(f"{get_settings().prometheus_url}/api/v1/query_range", timeout=30,
                            params={"query": expr, "start": start, "end": end, "step": "1s"}).json()
        assert body["status"] == "success", (title, expr, body)
        if not any(series["values"] for series in body["data"]["result"]):
            empty.append(f"{title}: {expr}")
    return empty


def dashboard_problems(run_dir: Path, dashboard_path: Path) -> list[str]:
    """Every panel of a module's dashboard that the run's report neither drew with data nor listed as
    empty with a reason (harness/dashboard.py stores the run's series in dashboard.json). A module's
    e2e test calls it on its short real run."""
    captured = json.loads((Path(run_dir) / "dashboard.json").read_text())
    assert not captured.get("error"), captured["error"]
    report = (Path(run_dir) / "report.md").read_text()
    section = report.split("## Dashboard", 1)[1].split("\n## ", 1)[0]
    problems = []
    for panel in (p for p in iter_panels(json.loads(Path(dashboard_path).read_text())["panels"]) if p["type"] != "row"):
        [stored] = [p for p in captured["panels"] if p["id"] == panel["id"]]
        has_data = any(s["values"] for t in stored["targets"] for s in t["series"])
        listed = f"| {panel['title']} | " in section
        if has_data == listed:
            problems.append(f"{panel['title']}: {'drawn and listed as empty' if listed else 'no data, not listed'}")
    return problems
