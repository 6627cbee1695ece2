"""The module contract against the running targets: a target serves exactly its spec's variants, and
every dashboard panel's metric is emitted by the target or the load generator (a broken panel shown
failing here too). The spec-only half of the contract is tests/unit/test_spec.py."""

import json
import re
from pathlib import Path

import prometheus_client
import pytest
import requests
from grafana import panel_queries
from prometheus_client.parser import text_string_to_metric_families

import harness.loadgen.exporter  # noqa: F401  (registers the load side's metrics in the default registry)
from harness.modules import dashboard, modules

pytestmark = pytest.mark.integration

MODULES = sorted(modules())
GENERIC_ROUTES = {"healthz", "metrics", "openapi.json", "docs", "redoc", "admin"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, strings, ranges, grouping removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)  # numbers and durations (5m, 0.95, 1e3)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end():].lstrip()[:1]
        if following != "(" and match.group(0).lower() not in PROMQL_WORDS:
            names.add(match.group(0))
    return names


def exposed(exposition: str) -> set[str]:
    """Every series name an exposition can carry, from its families' types (a family without samples yet
    still counts: its labels are only filled in by traffic)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum")}
    return {family.name + suffix for family in text_string_to_metric_families(exposition)
            for suffix in suffixes.get(family.type, ("",))}


def load_side_names() -> set[str]:
    return exposed(prometheus_client.generate_latest(prometheus_client.REGISTRY).decode())


def unknown_panel_metrics(dashboard_path: Path, emitted: set[str]) -> list[str]:
    return [f"{title}: {name}" for title, expr in panel_queries(dashboard_path)
            for name in sorted(metric_names(expr) - emitted - PROMETHEUS_OWN)]


@pytest.mark.parametrize("module_id", MODULES)
def test_target_routes_are_the_spec_variants(target_urls, module_id):
    spec = modules()[module_id]
    paths = requests.get(f"{target_urls[module_id]}/openapi.json", timeout=10).json()["paths"]
    prefixes = {path.strip("/").split("/")[0] for path in paths} - GENERIC_ROUTES
    assert prefixes == set(spec.variant_names), f"routes {sorted(prefixes)} vs spec {spec.variant_names}"


@pytest.mark.parametrize("module_id", MODULES)
def test_every_panel_metric_is_emitted(target_urls, module_id):
    emitted = exposed(requests.get(f"{target_urls[module_id]}/metrics", timeout=10).text) | load_side_names()
    path = dashboard(modules()[module_id])
    assert panel_queries(path), f"{path} has no panel queries"
    assert unknown_panel_metrics(path, emitted) == []


def test_a_panel_reading_a_metric_nobody_emits_is_caught(target_urls, tmp_path):
    module_id = MODULES[0]
    board = json.loads(dashboard(modules()[module_id]).read_text())
    board["panels"].append({"title": "Broken", "type": "timeseries",
                            "targets": [{"expr": 'sum by (variant) (rate(harness_cache_hitz_total{x="a"}[1m]))'}]})
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(board))
    emitted = exposed(requests.get(f"{target_urls[module_id]}/metrics", timeout=10).text) | load_side_names()
    assert unknown_panel_metrics(broken, emitted) == ["Broken: harness_cache_hitz_total"]


def test_metric_names_reads_promql():
    expr = ('histogram_quantile(0.95, sum by (variant, le) (rate(a_bucket{module="m",le=~"1.*"}[5m]))) / '
            'on(variant) group_left sum(b_total offset 5m) or vector(0) * c')
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
