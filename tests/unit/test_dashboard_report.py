"""The report as a workshop reads it: claims led by verdict and sentence with units, the ones not run
apart with their command; and a stored dashboard drawn into the report with its empty panels listed."""

import html
import json

from sample_run import sample_run

from harness import dashboard, record, report
from harness.dashboard_render import format_value
from harness.presentation import humane


def typed(run: dict) -> record.Run:
    return record.load(run)


def test_values_read_in_their_unit():
    assert humane("cpu_s_per_mib", 0.000218) == "218 µs CPU per MiB"
    assert humane("p99_ms", 1500) == "1.5 s"
    assert humane("peak_bytes", 8 * 2**20) == "8 MiB"
    assert humane("db_queries_per_read", 0.07) == "0.07 db queries per read"
    assert humane("hit_ratio", 0.93, "percent") == "93.0%"
    assert format_value(0.0021, "s") == "2.1 ms" and format_value(8 * 2**20, "bytes") == "8 MiB"
    assert format_value(3 * 2**20, "Bps") == "3 MiB/s" and format_value(0.5, "percentunit") == "50%"
    assert format_value(1500, "reqps") == "1.5 kreq/s"


def test_claims_lead_with_verdict_and_sentence_and_the_not_run_are_apart(tmp_path):
    run = sample_run()
    report.render(typed(run), tmp_path)
    page = (tmp_path / "report.html").read_text()
    claims = page.split("<h2>Claims</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<th>verdict</th><th>claim</th><th>measured vs baseline</th><th>ratio (threshold)</th>" in claims
    held = next(c for c in run["claims"] if c["status"] == "held" and c["ratio"] is not None)
    row = next(r for r in claims.split("<tr>") if f"<summary>{held['id']} " in r)
    assert row.index(held["status"]) < row.index(held["sentence"][:30]) < row.index("<details>")
    assert html.escape(held["expression"]) in row.split("<details>", 1)[1]  # how it is computed: folded
    assert "(needs &gt;= 2x)" in row  # the ratio against its threshold, with the comparison
    not_run = [c for c in run["claims"] if c["status"] == "not run" and not c.get("demonstration")]
    folded = claims.split('<details class="notrun">', 1)[1]
    assert f"{len(not_run)} not run" in folded and "harness run scaling_reads --scenarios" in folded
    assert all(f"<b>{c['id']}</b>" in folded for c in not_run)
    assert all(f"<summary>{c['id']} " not in claims.split('<details class="notrun">')[0] for c in not_run)


def captured(empty_title: str = "Nothing here") -> dict:
    def panel(pid, title, values, y):
        series = [{"name": "direct", "labels": {"variant": "direct"}, "values": values}]
        return {"id": pid, "type": "timeseries", "title": title, "row": "",
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 6}, "unit": "s", "description": "", "legend": True,
                "targets": [{"expr": f"metric_{pid}", "legend": "{{variant}}", "series": series if values else []}]}

    return {"uid": "x", "title": "X", "start": 100.0, "end": 160.0, "step": 1, "variables": {}, "source": "d/x.json",
            "run_variants": ["direct"], "annotations": [],
            "panels": [panel(1, "Latency", [[100.0 + i, 0.01 * i] for i in range(60)], 0),
                       panel(2, empty_title, [], 6)]}


def test_a_stored_dashboard_is_drawn_and_its_empty_panels_listed(tmp_path):
    (tmp_path / dashboard.FILE).write_text(json.dumps(captured()))
    report.render(typed(sample_run()), tmp_path)
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Dashboard", 1)[1].split("\n## ", 1)[0]
    assert "1 of 2 panels have data" in section and "![dashboard.png](plots/dashboard.png)" in section
    assert "| Nothing here | every query returned no samples in the window: metric_2 |" in section
    assert "| Latency |" not in section
    assert (tmp_path / "plots" / "dashboard.png").stat().st_size > 10_000


def test_a_run_that_could_not_query_its_dashboard_says_why(tmp_path):
    (tmp_path / dashboard.FILE).write_text(json.dumps({"error": "the dashboard could not be queried: boom"}))
    report.render(typed(sample_run()), tmp_path)
    assert "No dashboard: the dashboard could not be queried: boom." in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "plots" / "dashboard.png").exists()


def test_the_e2e_check_sees_a_panel_that_lost_its_data_or_a_listed_one_that_has_it(tmp_path):
    from grafana import dashboard_problems

    source = tmp_path / "x.json"
    source.write_text(json.dumps({"panels": [{"id": 1, "type": "timeseries", "title": "Latency"},
                                             {"id": 2, "type": "timeseries", "title": "Nothing here"}]}))
    (tmp_path / dashboard.FILE).write_text(json.dumps(captured()))
    report.render(typed(sample_run()), tmp_path)
    assert dashboard_problems(tmp_path, source) == []
    lost = captured()
    lost["panels"][0]["targets"][0]["series"] = []  # drawn empty, but the report does not list it
    (tmp_path / dashboard.FILE).write_text(json.dumps(lost))
    assert dashboard_problems(tmp_path, source) == ["Latency: no data, not listed"]
    back = captured()
    back["panels"][1]["targets"][0]["series"] = back["panels"][0]["targets"][0]["series"]
    (tmp_path / dashboard.FILE).write_text(json.dumps(back))
    assert dashboard_problems(tmp_path, source) == ["Nothing here: drawn and listed as empty"]


def test_the_runs_faults_are_shaded_on_every_time_panel():
    from matplotlib.colors import to_rgba

    from harness.dashboard_render import FAULT_COLOR, dashboard_figure

    plain = captured()
    with_fault = {**captured(), "faults": [[120.0, 130.0, "redis"]]}

    def red_spans(fig):
        return [p for ax in fig.axes for p in ax.patches if p.get_facecolor()[:3] == to_rgba(FAULT_COLOR)[:3]]

    assert not red_spans(dashboard_figure(plain))
    spans = red_spans(dashboard_figure(with_fault))
    assert len(spans) == 1  # the one time panel with data; the empty one says "no data" instead
    assert spans[0].get_x() == 20.0 and spans[0].get_width() == 10.0
