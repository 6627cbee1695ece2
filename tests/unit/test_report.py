import io
import re

from rich.console import Console
from sample_run import sample_run

from harness import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = {"latency_percentiles.png", "throughput.png", "summary_bars.png", "hit_ratio.png"}


def text_of(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def all_passing(run: dict) -> dict:
    for claim in run["claims"]:
        if claim["status"] == "fail":
            claim["status"] = "pass"
    run["passed"] = True
    return run


def test_render_writes_reports_and_pngs(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    paths = report.render(sample_run(), tmp_path)

    assert {p.name for p in paths} == PLOTS | {"report.md", "report.html"}
    assert all(p.exists() and p.parent.is_relative_to(tmp_path) for p in paths)
    for name in PLOTS:
        data = (tmp_path / "plots" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert (tmp_path / "run.json").read_text() == "{}"


def test_render_is_deterministic(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    report.render(sample_run(), first)
    report.render(sample_run(), second)
    for name in ("report.md", "report.html", "plots/throughput.png"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_html_is_self_contained(tmp_path):
    report.render(sample_run(), tmp_path)
    page = (tmp_path / "report.html").read_text()

    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    assert page.count("<img ") == len(PLOTS)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    assert "<script" not in page and "<link" not in page
    assert 'class="fail"' in page and 'class="pass"' in page


def test_markdown_has_claims_ratio_and_failed_verdict(tmp_path):
    run = sample_run()
    report.render(run, tmp_path)
    md = (tmp_path / "report.md").read_text()

    for claim in run["claims"]:
        assert claim["id"] in md and claim["sentence"] in md
    assert "| 2.17x |" in md  # cache_aside rps / direct rps
    assert "**FAILED: 3 claims passed, 1 failed, 1 skipped; 3/3 invariants held**" in md
    assert "PASSED" not in md
    assert "![throughput.png](plots/throughput.png)" in md
    assert "How to read this" in md


def test_markdown_passed_when_all_claims_pass(tmp_path):
    report.render(all_passing(sample_run()), tmp_path)
    md = (tmp_path / "report.md").read_text()

    assert "**PASSED: 4 claims passed, 0 failed, 1 skipped" in md
    assert "FAILED" not in md


def test_summary_table_shows_only_measured_columns(tmp_path):
    report.render(sample_run(), tmp_path)
    md = (tmp_path / "report.md").read_text()
    ycsb = md.split("## Summary: ycsb")[1].split("##")[0]
    stampede = md.split("## Summary: stampede")[1].split("##")[0]

    assert "| direct | 601 | 30 | 90 | 150 |" in ycsb
    assert "DB queries/read" in ycsb and "93.0%" in ycsb
    assert "DB queries/expiry" not in ycsb
    assert "DB queries/expiry" in stampede and "| 9.5 |" in stampede


def test_html_escapes_claim_sentence(tmp_path):
    run = sample_run()
    run["claims"][0]["sentence"] = "Caches <script>alert(1)</script> & win"
    report.render(run, tmp_path)
    page = (tmp_path / "report.html").read_text()

    assert "<script>" not in page
    assert "Caches &lt;script&gt;alert(1)&lt;/script&gt; &amp; win" in page


def test_single_variant_single_phase_renders(tmp_path):
    run = sample_run(variants=["direct"], repeat=1)
    assert len(run["phases"]) == 1
    paths = report.render(run, tmp_path)

    assert "hit_ratio.png" not in {p.name for p in paths}
    assert len(paths) == 5
    md = (tmp_path / "report.md").read_text()
    assert "variant cache_aside was not run" in md and "PASSED" in md


def test_none_server_metrics_still_render(tmp_path):
    run = sample_run()
    for phase in run["phases"]:
        phase["server"] = dict.fromkeys(phase["server"])
        phase["load_cpu_us_per_request"] = None
        phase["timeline"].append([30.0, None, None])
    for variants in run["summary"].values():
        for metrics in variants.values():
            for key in ("hit_ratio", "db_queries_per_read", "cpu_ms_per_request", "db_queries_per_expiry",
                        "load_cpu_us_per_request", "p999_ms"):
                metrics[key] = None
        variants[next(iter(variants))].pop("percentiles")
    paths = report.render(run, tmp_path)

    assert "hit_ratio.png" not in {p.name for p in paths}
    md = (tmp_path / "report.md").read_text()
    assert "hit ratio" not in md and "DB queries/read" not in md and "p99.9" not in md


def test_empty_run_renders(tmp_path):
    paths = report.render({"run_id": "x", "module": "scaling_reads"}, tmp_path)
    assert len(paths) == 5
    assert "None recorded." in (tmp_path / "report.md").read_text()


def test_fmt():
    assert report.fmt(1234.4) == "1,234"
    assert report.fmt(12000) == "12,000"
    assert report.fmt(30.123) == "30.1"
    assert report.fmt(0.41234) == "0.412"
    assert report.fmt(2.1666, "ratio") == "2.17x"
    assert report.fmt(0.93, "percent") == "93.0%"
    assert report.fmt(-4.25, "change") == "-4.2%"
    assert report.fmt(None) == report.fmt(float("nan")) == "–"
    assert report.fmt(False) == "no"


def compare_pair() -> tuple[dict, dict]:
    a = sample_run(run_id="20261123T191500Z")
    b = sample_run(run_id="20261124T080000Z")
    a["summary"]["ycsb"]["direct"]["rps"] = 600.0
    b["summary"]["ycsb"]["direct"]["rps"] = 660.0
    b["claims"][2]["status"] = "pass"
    return a, b


def test_compare_markdown_shows_change():
    a, b = compare_pair()
    md = report.compare_markdown(a, b)

    assert "A 20261123T191500Z" in md and "B 20261124T080000Z" in md
    assert "| ycsb | direct | rps | 600 | 660 | +10.0% |" in md
    assert "| ycsb | cache_aside | hit_ratio | 93.0% | 93.0% | +0.0% |" in md
    assert "| ycsb |  | claim cache_hit_ratio | fail | pass | changed |" in md
    assert "| ycsb |  | claim cache_throughput | pass | pass |  |" in md
    assert "db_queries_per_expiry" in md


def test_compare_table_shows_change():
    a, b = compare_pair()
    out = text_of(report.compare_table(a, b))

    assert "20261123T191500Z" in out and "20261124T080000Z" in out
    assert re.search(r"direct\s+│ rps\s+│\s+600 │\s+660 │\s+\+10\.0% │", out)
    assert re.search(r"claim cache_hit_ratio\s+│\s+fail │\s+pass │\s+changed │", out)


def test_verdict_table_has_a_row_per_claim():
    run = sample_run()
    table = report.verdict_table(run)
    out = text_of(table)

    assert table.row_count == len(run["claims"])
    for claim in run["claims"]:
        line = next(line for line in out.splitlines() if f" {claim['id']} " in line)
        assert claim["status"] in line and claim["expression"] in line
    assert re.search(r"pass\s+│ cache_throughput .*│\s+2\.17x │\s+2 │", out)


def test_summary_table_per_scenario():
    run = sample_run()
    out = text_of(report.summary_table(run, "stampede"))

    assert report.summary_table(run, "stampede").row_count == 2
    assert "DB queries/expiry" in out and "9.5" in out and "noop" not in out
    assert report.summary_table(run).row_count == 4


def test_sweep_curves_plot_and_knee_table(tmp_path):
    points = [{"rate": r, "achieved": a, "p99_ms": p, "dropped": d}
              for r, a, p, d in ((100, 100, 20, 0), (200, 199, 60, 0), (400, 310, 900, 50))]
    curves = {"sweep": {"bound_ms": 100, "variants": {"direct": {"points": points, "knee_rate": 200},
                                                       "cache_aside": {"points": points[:2], "knee_rate": 200}}}}
    paths = report.render(sample_run(curves=curves), tmp_path)
    assert tmp_path / "plots" / "latency_vs_throughput.png" in paths
    assert (tmp_path / "plots" / "latency_vs_throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    assert "## Latency vs throughput: sweep" in md
    assert "Knees: direct 200/s, cache_aside 200/s" in md
    assert "| direct | 400 | 310 | 900 | 50 |  |" in md
