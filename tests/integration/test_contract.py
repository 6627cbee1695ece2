"""The module contract against the running targets: a target serves exactly its spec's variants; every
`ServerMetric` selector of its spec (numerator and denominator) names a series that the module emits,
with the labels it filters on; and every dashboard panel's metric is emitted by the target, its
processes or the load generator. Each check is shown failing on a deliberate typo too. The spec-only
half of the contract is tests/unit/test_spec.py."""

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
from harness.settings import get_settings
from harness.spec import ModuleSpec, ServerMetric

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


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum")}
# Labels Prometheus attaches to every scraped series, and the harness adds to every ServerMetric selector.
SCRAPE_LABELS = {"job", "instance"}
HARNESS_LABELS = ("module", "variant")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?")
MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*(?:,|$)')


def exposed_labels(exposition: str) -> dict[str, set[str] | None]:
    """{series name: the label names its samples carry} for every series an exposition can carry, from its
    families' types (a family without samples yet still counts; its labels are unknown, None, until
    traffic fills them in)."""
    found: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(exposition):
        labels = {name for sample in family.samples for name in sample.labels} - {"le", "quantile"}
        for suffix in SUFFIXES.get(family.type, ("",)):
            found[family.name + suffix] = labels if family.samples else None
    return found


def exposed(exposition: str) -> set[str]:
    """Every series name an exposition can carry."""
    return set(exposed_labels(exposition))


def load_side_names() -> set[str]:
    return exposed(prometheus_client.generate_latest(prometheus_client.REGISTRY).decode())


def parse_selector(selector: str) -> tuple[str, list[str]]:
    """(metric name, label names matched) of a plain metric selector such as `m{a="x",b=~"y.*"}`."""
    match = SELECTOR.fullmatch(selector.strip())
    if match is None:
        raise ValueError(f"not a plain metric selector: {selector!r}")
    body = match.group(2) or ""
    matchers = list(MATCHER.finditer(body))
    if "".join(m.group(0) for m in matchers) != body:
        raise ValueError(f"cannot read the label matchers of {selector!r}")
    return match.group(1), [m.group(1) for m in matchers]


def bad_selectors(metrics: tuple[ServerMetric, ...], emitted: dict[str, set[str] | None]) -> list[str]:
    """Every ServerMetric selector (numerator and denominator) that names a series nobody emits, or a label
    its series lacks (`module` and `variant`, which the harness adds, included). A series whose labels are
    unknown (no sample yet) is checked by name only."""
    problems = []
    for metric in metrics:
        for side in ("numerator", "denominator"):
            selector = getattr(metric, side)
            if selector is None:
                continue
            where = f"{metric.name}.{side} {selector}"
            try:
                name, labels = parse_selector(selector)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if name not in emitted:
                close = sorted(n for n in emitted if n.split("_")[:2] == name.split("_")[:2])
                problems.append(f"{where}: no process of the module emits {name}" +
                                (f" (similar: {', '.join(close)})" if close else ""))
                continue
            known = emitted[name]
            if known is not None:
                missing = [label for label in (*labels, *HARNESS_LABELS) if label not in known | SCRAPE_LABELS]
                if missing:
                    problems.append(f"{where}: {name} has no label {', '.join(missing)} "
                                    f"(it has {', '.join(sorted(known)) or 'none'})")
    return problems


def module_exposition(spec: ModuleSpec, target_url: str) -> dict[str, set[str] | None]:
    """What a module emits: its target's and its processes' /metrics (the ones with a port)."""
    settings = get_settings()
    urls = [target_url, *(f"http://{settings.target_host}:{settings.module_port(p.port)}"
                          for p in spec.processes if p.port)]
    emitted: dict[str, set[str] | None] = {}
    for url in urls:
        response = requests.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200, f"{url}/metrics answered {response.status_code}"
        for name, labels in exposed_labels(response.text).items():
            if name in emitted and emitted[name] is not None and labels is not None:
                emitted[name] = emitted[name] | labels
            elif name not in emitted or labels is not None:
                emitted[name] = labels
    return emitted


def load_side_labels() -> dict[str, set[str] | None]:
    return exposed_labels(prometheus_client.generate_latest(prometheus_client.REGISTRY).decode())


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
def test_every_server_metric_selector_names_an_emitted_series(target_urls, module_id):
    spec = modules()[module_id]
    emitted = {**load_side_labels(), **module_exposition(spec, target_urls[module_id])}
    assert bad_selectors(spec.server_metrics, emitted) == []


def test_a_misspelled_selector_is_caught():
    emitted = {"harness_cache_lookups_total": {"module", "variant", "result"},
               "harness_db_queries_total": None,  # registered, no sample yet: checked by name only
               "harness_writes_consumer_lag": {"group"}}
    metrics = (
        ServerMetric(name="hit_ratio", label="hits", numerator='harness_cache_lookups_total{result="hit"}',
                     denominator="harness_cache_lookupz_total"),
        ServerMetric(name="queries", label="queries", kind="increase",
                     numerator='harness_db_queries_total{kind="read"}'),
        ServerMetric(name="by_outcome", label="x", kind="increase",
                     numerator='harness_cache_lookups_total{outcome="hit"}'),
        ServerMetric(name="lag", label="lag", kind="gauge", numerator="harness_writes_consumer_lag"),
    )
    assert bad_selectors(metrics, emitted) == [
        "hit_ratio.denominator harness_cache_lookupz_total: no process of the module emits "
        "harness_cache_lookupz_total (similar: harness_cache_lookups_total)",
        "by_outcome.numerator harness_cache_lookups_total{outcome=\"hit\"}: harness_cache_lookups_total has no "
        "label outcome (it has module, result, variant)",
        "lag.numerator harness_writes_consumer_lag: harness_writes_consumer_lag has no label module, variant "
        "(it has group)",
    ]


def test_parse_selector():
    assert parse_selector('a_total{x="1", y=~"b,c.*",z!="q\\"}"}') == ("a_total", ["x", "y", "z"])
    assert parse_selector("m") == ("m", [])
    with pytest.raises(ValueError, match="not a plain metric selector"):
        parse_selector("rate(m[1m])")


@pytest.mark.parametrize("module_id", MODULES)
def test_every_panel_metric_is_emitted(target_urls, module_id):
    spec = modules()[module_id]
    emitted = set(module_exposition(spec, target_urls[module_id])) | load_side_names()
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
