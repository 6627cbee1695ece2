"""The module's Grafana dashboard, live in Locust's web UI, without Grafana.

Locust's web UI gains a "Dashboard" tab (Locust's extended tabs: a table filled from the stats it
polls) with every panel's latest value per variant, and a page, `/harness/dashboard`, that draws
every panel as the dashboard lays it out (plotly.js, served from the plotly package), refreshed
every few seconds. Both read `/harness/dashboard/series`: the dashboard's queries over the last
`window` seconds on the embedded Prometheus (harness/grafana.py), with the running variant named,
so switching the variant in Locust's form shows the difference side by side. Queries are cached for
a few seconds: many open tabs cost Prometheus no more than one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.grafana import capture
from harness.prom import Prometheus
from harness.settings import Settings

__all__ = ["LiveDashboard", "install"]

TAB_KEY = "harness-dashboard"
REFRESH_S = 5
WINDOW_S, MIN_WINDOW_S, MAX_WINDOW_S = 300, 30, 3600


class LiveDashboard:
    """The dashboard's series over a recent window, cached for REFRESH_S."""

    def __init__(self, dashboard: Path, module: str, variants: list[str], settings: Settings) -> None:
        self.dashboard, self.module, self.variants = dashboard, module, variants
        self.prom, self.scrape_s = Prometheus(settings.prometheus_url, timeout_s=5.0), settings.scrape_interval_s
        self._cache: dict[int, tuple[float, dict]] = {}

    def series(self, window_s: int, running: str) -> dict:
        now = time.time()
        cached = self._cache.get(window_s)
        if cached is None or now - cached[0] > REFRESH_S:
            captured = capture(self.dashboard, self.prom, now - window_s, now,
                               {"module": self.module, "variant": self.variants}, self.scrape_s)
            self._cache = {window_s: (now, captured)}
            cached = self._cache[window_s]
        return {**cached[1], "running": running, "run_variants": self.variants, "refresh_s": REFRESH_S}

    def rows(self, running: str) -> list[dict]:
        """The tab's table: a row per panel, each series' latest value, the running variant's first."""
        from harness.dashboard_render import format_value

        captured = self.series(WINDOW_S, running)
        rows = [{"panel": "All panels, drawn", "latest": "/harness/dashboard (opens the charts, "
                                                         f"refreshed every {REFRESH_S} s)"}]
        for panel in captured["panels"]:
            if panel["type"] == "row":
                continue
            latest = [(s["labels"].get("variant") != running, s["name"], s["values"][-1][1])
                      for t in panel["targets"] for s in t["series"] if s["values"]]
            text = " · ".join(f"{name}: {format_value(v, panel['unit'])}" for _, name, v in sorted(latest)[:8])
            rows.append({"panel": panel["title"], "latest": text or "no data in the last 5 minutes"})
        return rows


def window_arg(raw: str | None) -> int:
    """The `window` query parameter in seconds, or ValueError with what is expected."""
    if raw is None:
        return WINDOW_S
    if not raw.isdigit() or not MIN_WINDOW_S <= int(raw) <= MAX_WINDOW_S:
        raise ValueError(f"window must be whole seconds from {MIN_WINDOW_S} to {MAX_WINDOW_S}, got {raw!r}")
    return int(raw)


def install(environment, live: LiveDashboard) -> None:
    """Add the tab, the page and the data endpoint to Locust's web UI (nothing without a web UI)."""
    web_ui = environment.web_ui
    if web_ui is None:
        return
    from flask import Response, jsonify, request

    from harness.prom import PrometheusError

    def running() -> str:
        return getattr(environment.parsed_options, "variant", "") or ""

    web_ui.template_args["extendedTabs"] = [{"title": "Dashboard", "key": TAB_KEY}]
    web_ui.template_args["extendedTables"] = [
        {"key": TAB_KEY, "structure": [{"key": "panel", "title": "Panel"},
                                       {"key": "latest", "title": "Latest value per series (running variant first)"}]}]

    @web_ui.app.after_request
    def extend_stats(response):
        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        try:
            rows = live.rows(running())
        except (PrometheusError, ValueError) as exc:
            rows = [{"panel": "Prometheus", "latest": str(exc)}]
        body = response.get_json()
        body["extended_stats"] = [{"key": TAB_KEY, "data": rows}]
        response.set_data(json.dumps(body))
        return response

    @web_ui.app.route("/harness/dashboard/series")
    @web_ui.auth_required_if_enabled
    def dashboard_series():
        try:
            window_s = window_arg(request.args.get("window"))
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400
        try:
            return jsonify(live.series(window_s, running()))
        except PrometheusError as exc:
            return jsonify({"error": str(exc)}), 503

    @web_ui.app.route("/harness/dashboard")
    @web_ui.auth_required_if_enabled
    def dashboard_page():
        return Response(PAGE.replace("__REFRESH_MS__", str(REFRESH_S * 1000)), mimetype="text/html")

    @web_ui.app.route("/harness/plotly.js")
    def plotly_js():
        from plotly.offline import get_plotlyjs

        return Response(get_plotlyjs(), mimetype="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})


PAGE = (Path(__file__).with_name("live_tab.html")).read_text(encoding="utf-8")
