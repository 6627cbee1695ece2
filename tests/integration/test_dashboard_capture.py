"""A Grafana dashboard queried and drawn from its JSON alone, on the real Prometheus of the stack: panels
with data are drawn, and a broken query or a metric nobody emits is listed as empty, with why."""

import json
import time

import pytest

from harness import dashboard_render
from harness.grafana import capture, empty_panels, legend, resolve, substitute
from harness.prom import Prometheus
from harness.settings import get_settings

pytestmark = pytest.mark.integration


def panel(pid: int, title: str, expr: str, y: int, kind: str = "timeseries") -> dict:
    return {"id": pid, "type": kind, "title": title, "gridPos": {"x": 0, "y": y, "w": 24, "h": 6},
            "fieldConfig": {"defaults": {"unit": "short"}},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{job}}"}]}


DASHBOARD = {
    "uid": "t", "title": "throwaway",
    "templating": {"list": [{"name": "job", "type": "custom", "current": {"value": "prometheus"}}]},
    "annotations": {"list": [{"name": "scrapes", "expr": 'up{job="$job"} == 1', "enable": True}]},
    "panels": [
        {"id": 1, "type": "row", "title": "A row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}, "panels": []},
        panel(2, "Samples appended", 'sum by (job) (rate(prometheus_tsdb_head_samples_appended_total{job="$job"}'
                                     '[$__rate_interval]))', 1),
        panel(3, "Broken query", "sum(rate(up[", 7),
        panel(4, "Nobody emits this", "harness_metric_that_no_one_exports_total{module=\"$module\"}", 13),
        panel(5, "Up, as lanes", 'up{job="$job"}', 19, "state-timeline"),
    ],
}


@pytest.fixture(scope="module")
def captured(stack, tmp_path_factory):
    prom = Prometheus(get_settings().prometheus_url)
    deadline = time.monotonic() + 30
    while prom.value('up{job="prometheus"}', time.time()) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    path = tmp_path_factory.mktemp("dash") / "throwaway.json"
    path.write_text(json.dumps(DASHBOARD))
    end = time.time()
    return capture(path, prom, end - 60, end, {"module": "none_such"}, get_settings().scrape_interval_s)


def test_panels_with_data_are_captured_with_their_legends(captured):
    by_title = {p["title"]: p for p in captured["panels"]}
    samples = by_title["Samples appended"]["targets"][0]
    assert 'appended_total{job="prometheus"}' in samples["expr"]  # the dashboard's $job, resolved
    assert "[4s]" in samples["expr"]  # $__rate_interval: four scrape intervals at a 1 s step
    assert [s["name"] for s in samples["series"]] == ["prometheus"] and len(samples["series"][0]["values"]) > 10
    assert by_title["A row"]["type"] == "row" and by_title["Up, as lanes"]["row"] == "A row"
    assert captured["annotations"][0]["series"][0]["values"]  # the annotation's spans, for shading


def test_a_broken_query_and_a_metric_nobody_emits_are_listed_with_why(captured):
    empty = dict(empty_panels(captured))
    assert set(empty) == {"Broken query", "Nobody emits this"}
    assert "parse error" in empty["Broken query"]
    assert "no samples" in empty["Nobody emits this"] and 'module="none_such"' in empty["Nobody emits this"]


def test_the_capture_draws_as_one_figure(captured, tmp_path):
    fig = dashboard_render.dashboard_figure(captured)
    assert len(fig.axes) == 4  # one axes per panel, none for the row
    fig.savefig(tmp_path / "d.png", dpi=40)
    assert (tmp_path / "d.png").stat().st_size > 5_000


def test_variables_resolve_as_grafana_writes_them():
    assert resolve({}, {"variant": ["a", "b.c"]}) == {"variant": r"(a|b\.c)"}
    assert resolve({"templating": {"list": [{"name": "v", "current": {"value": ["$__all"]}}]}}, {}) == {"v": ".*"}
    assert substitute('m{v=~"$variant"}[$__range]', rate_interval="4s", interval="1s", range_="60s",
                      variables={"variant": "(a|b)"}) == 'm{v=~"(a|b)"}[60s]'
    with pytest.raises(ValueError, match=r"\$missing"):
        substitute("m{v=\"$missing\"}", rate_interval="4s", interval="1s", range_="60s", variables={})
    assert legend("{{variant}} p99", {"variant": "direct"}) == "direct p99"
    assert legend("", {"__name__": "up", "job": "x"}) == "job=x"
