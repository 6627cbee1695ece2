"""A run's dashboard: its module's Grafana dashboard queried over the run's window, stored and drawn.

After every `harness run`, `store` queries every panel of `dashboards/<module>.json` on the run's
Prometheus over the run's window (module and variant resolved as Grafana would) and writes the
series to `dashboard.json` in the run's folder; the report draws it from there
(harness/dashboard_render.py), so `harness report` re-renders it after the stack is gone, and
`harness compare` puts two runs' panels side by side. A failure to query is stored, not raised:
the run's verdicts never depend on the dashboard, and the report says why it has none.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.grafana import capture, empty_panels
from harness.prom import Prometheus
from harness.record import Run
from harness.settings import Settings

__all__ = ["FILE", "compare", "load", "store", "window", "write_png"]

FILE = "dashboard.json"
MARGIN_S = 5.0  # around the phases: the first scrape before, the last rate window after


def window(run: Run, margin_s: float = MARGIN_S) -> tuple[float, float] | None:
    """From the first phase's start to the last phase's end, with a margin; None before any phase ran."""
    starts = [p.start for p in run.phases if p.start]
    ends = [p.end for p in run.phases if p.end]
    if not starts or not ends:
        return None
    return min(starts) - margin_s, max(ends) + margin_s


def variants(run: Run) -> list[str]:
    return list(dict.fromkeys([*(run.parameters.get("variants") or []), *(p.variant for p in run.phases)]))


def store(run: Run, run_dir: Path, settings: Settings) -> Path:
    """Query the run's dashboard over its window and write dashboard.json; returns its path."""
    path = Path(run_dir) / FILE
    source = settings.project_dir / "dashboards" / f"{run.module}.json"
    span = window(run)
    if span is None:
        captured = {"error": "no phase ran, so the run has no window to show"}
    elif not source.exists():
        captured = {"error": f"the module has no dashboard ({source} not found)"}
    else:
        try:
            captured = capture(source, Prometheus(settings.prometheus_url), *span,
                               {"module": run.module, "variant": variants(run) or [".*"]}, settings.scrape_interval_s)
        except Exception as exc:  # never fails the run: the report shows why the dashboard is missing
            captured = {"error": f"the dashboard could not be queried: {type(exc).__name__}: {exc}"}
    captured["source"], captured["run_variants"] = f"dashboards/{run.module}.json", variants(run)
    # the faults the run played, shaded even on a dashboard without a fault annotation
    captured["faults"] = [[f.begin, f.end or p.end or f.begin, f.service] for p in run.phases for f in p.faults
                          if f.begin is not None]
    path.write_text(json.dumps(captured, separators=(",", ":")), encoding="utf-8")
    return path


def load(run_dir: Path) -> dict | None:
    path = Path(run_dir) / FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def write_png(captured: dict, path: Path, title: str = "", dpi: int = 80) -> Path:
    from harness.dashboard_render import dashboard_figure

    path.parent.mkdir(parents=True, exist_ok=True)
    dashboard_figure(captured, title).savefig(path, dpi=dpi, metadata={"Software": None})
    return path


def blocks(run_dir: Path, image: str | None) -> list[tuple]:
    """The report's dashboard section: the picture, then every panel that drew nothing and why."""
    captured = load(run_dir)
    if captured is None:
        return []
    heading = [("h", 2, "Dashboard")]
    if captured.get("error"):
        return heading + [("p", f"No dashboard: {captured['error']}.")]
    shown = [p for p in captured["panels"] if p["type"] != "row"]
    empty = empty_panels(captured)
    text = (f"{captured['source']} ({captured['title']}), the dashboard compose's Grafana loads, queried on this run's "
            f"Prometheus over the run's window ({captured['end'] - captured['start']:.0f} s, step "
            f"{captured['step']:g} s) and drawn as Grafana lays it out. Shaded: the phases, one colour per variant; "
            f"red: faults. {len(shown) - len(empty)} of {len(shown)} panels have data.")
    out = heading + [("p", text), ("images", [image] if image else [])]
    if empty:
        out += [("p", "Panels with no data in this run (a broken query, or a metric this run's scenarios do not "
                      "produce):"), ("table", ["panel", "why it is empty"], [list(e) for e in empty])]
    return out


def compare(run_dir_a: Path, run_dir_b: Path, label_a: str, label_b: str, path: Path) -> Path | None:
    """Both runs' dashboards side by side in one PNG, or None when either has none."""
    from harness.dashboard_render import compare_figure

    a, b = load(run_dir_a), load(run_dir_b)
    if not a or not b or a.get("error") or b.get("error"):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    compare_figure(a, b, label_a, label_b).savefig(path, dpi=80, metadata={"Software": None})
    return path
