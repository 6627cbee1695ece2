import copy
import io
import re

import pytest
from rich.console import Console
from sample_run import sample_run

from harness import censored, gate, record, report
from harness.presentation import fmt, main_group

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = {"latency_percentiles.png", "throughput.png", "summary_bars.png", "bars_hit_ratio.png"}


def text_of(renderable) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def typed(run: dict) -> record.Run:
    """The test's run.json content as the report reads it: through the one loader."""
    return record.load(copy.deepcopy(run))


def all_held(run: dict) -> dict:
    run["claims"] = [c for c in run["claims"] if c["status"] in ("held", "not run")]
    run["passed"] = True
    return run


def test_render_writes_reports_and_pngs(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    paths = report.render(typed(sample_run()), tmp_path)

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
    report.render(typed(sample_run()), first)
    report.render(typed(sample_run()), second)
    for name in ("report.md", "report.html", "plots/throughput.png"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_html_is_self_contained(tmp_path):
    report.render(typed(sample_run()), tmp_path)
    page = (tmp_path / "report.html").read_text()

    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    assert page.count("<img ") == len(PLOTS)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    assert "<script" not in page and "<link" not in page
    assert 'class="failed"' in page and 'class="held"' in page and 'class="unmeasured"' in page


def test_markdown_has_claims_ratio_and_failed_verdict(tmp_path):
    run = sample_run()
    report.render(typed(run), tmp_path)
    md = (tmp_path / "report.md").read_text()

    for claim in run["claims"]:
        assert claim["id"] in md and claim["sentence"] in md
    assert "| 2.17x |" in md  # cache_aside rps / direct rps
    assert "**FAILED: claims 3 held, 1 failed, 1 unmeasured, 1 not run; 3/3 invariants held**" in md
    assert "| unmeasured | noop_offload |" in md and "noop db_queries_per_read has no value in ycsb" in md
    assert "| not run | write_through_fresh |" in md
    assert "PASSED" not in md
    assert "![throughput.png](plots/throughput.png)" in md
    assert "How to read this" in md


def test_markdown_passed_when_all_claims_hold(tmp_path):
    report.render(typed(all_held(sample_run())), tmp_path)
    md = (tmp_path / "report.md").read_text()

    assert "**PASSED: claims 3 held, 1 not run" in md
    assert "FAILED" not in md


def test_columns_come_from_the_presentation(tmp_path):
    report.render(typed(sample_run()), tmp_path)
    md = (tmp_path / "report.md").read_text()
    ycsb = md.split("## Summary: ycsb")[1].split("##")[0]
    stampede = md.split("## Summary: stampede")[1].split("##")[0]

    assert "| direct | 601 | 30 | 90 | 150 |" in ycsb
    assert "DB queries/read" in ycsb and "93.0%" in ycsb
    assert "DB queries/expiry" not in ycsb  # a column appears only where it was measured
    assert "DB queries/expiry" in stampede and "| 9.5 |" in stampede


def test_a_run_without_presentation_gets_generic_columns_and_plots(tmp_path):
    run = sample_run()
    del run["presentation"]
    paths = report.render(typed(run), tmp_path)
    md = (tmp_path / "report.md").read_text()

    assert "bars_hit_ratio.png" not in {p.name for p in paths}
    ycsb = md.split("## Summary: ycsb")[1].split("##")[0]
    assert "| variant | rps | p50 ms |" in ycsb and "hit ratio" not in ycsb and "server CPU ms/req" in ycsb
    assert main_group(typed(run))[0] == "ycsb"  # no main scenario: the first group


def test_presentation_picks_the_main_group_and_the_bar_plots(tmp_path):
    run = sample_run()
    run["presentation"] = {**run["presentation"], "main_scenario": "stampede",
                           "bar_plots": [["db_queries_per_expiry", "DB queries/expiry", "num"]]}
    paths = report.render(typed(run), tmp_path)
    assert main_group(typed(run))[0] == "stampede"
    assert {p.name for p in paths} >= {"bars_db_queries_per_expiry.png"}
    assert "bars_hit_ratio.png" not in {p.name for p in paths}


def test_over_budget_phases_and_failure_reasons_are_named(tmp_path):
    run = sample_run()
    phase = run["phases"][1]
    phase.update(failures=25_000, failure_ratio=0.5, errors={"503": 24_000, "ConnectionError": 1_000},
                 over_budget=True)
    run = sample_run(phases=run["phases"])
    report.render(typed(run), tmp_path)
    md = (tmp_path / "report.md").read_text()

    assert "| invalid | cache_throughput |" in md
    assert "## Phases the claims cannot trust" in md
    assert ("phase 2 (ycsb/cache_aside rep 1): 50.0% of 50,243 requests failed (503 x24,000, ConnectionError "
            "x1,000), over its 1% error budget") in md
    assert "| 2 | ycsb | cache_aside | 1 | – | 25,243 | 25,000 | OVER 50.0% of 1.0% |" in md
    assert "503 x24,000, ConnectionError x1,000 |" in md


def test_faults_are_listed_and_shaded(tmp_path):
    run = sample_run(variants=["cache_aside"], repeat=1)
    start = run["phases"][0]["measured_start"]
    run["phases"][0]["faults"] = [{"service": "redis", "action": "kill", "planned_at_s": 6, "duration_s": 5,
                                   "begin": start + 6.1, "end": start + 11.4, "error": None}]
    report.render(typed(run), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "## Faults" in md and "| 1 | redis | kill | 6 | 6.1 | 5.3 |  |" in md
    plain = tmp_path / "plain"
    plain.mkdir()
    report.render(typed(sample_run(variants=["cache_aside"], repeat=1)), plain)
    assert (plain / "plots/throughput.png").read_bytes() != (tmp_path / "plots/throughput.png").read_bytes()


def test_html_escapes_claim_sentence(tmp_path):
    run = sample_run()
    run["claims"][0]["sentence"] = "Caches <script>alert(1)</script> & win"
    report.render(typed(run), tmp_path)
    page = (tmp_path / "report.html").read_text()

    assert "<script>" not in page
    assert "Caches &lt;script&gt;alert(1)&lt;/script&gt; &amp; win" in page


def test_single_variant_single_phase_renders(tmp_path):
    run = sample_run(variants=["direct"], repeat=1)
    assert len(run["phases"]) == 1
    paths = report.render(typed(run), tmp_path)

    assert "bars_hit_ratio.png" not in {p.name for p in paths}
    assert len(paths) == 5
    md = (tmp_path / "report.md").read_text()
    assert "variant cache_aside was not run" in md


def test_none_server_metrics_still_render(tmp_path):
    run = sample_run()
    for phase in run["phases"]:
        phase["server"] = dict.fromkeys(phase["server"])
        phase["load_cpu_us_per_request"] = None
        phase["timeline"].append([30, None, None])
    for variants in run["summary"].values():
        for metrics in variants.values():
            for key in ("hit_ratio", "db_queries_per_read", "cpu_ms_per_request", "db_queries_per_expiry",
                        "load_cpu_us_per_request", "p999_ms"):
                metrics[key] = None
        variants[next(iter(variants))].pop("percentiles")
    paths = report.render(typed(run), tmp_path)

    assert "bars_hit_ratio.png" not in {p.name for p in paths}
    md = (tmp_path / "report.md").read_text()
    assert "hit ratio" not in md and "DB queries/read" not in md and "p99.9" not in md


def test_empty_run_renders(tmp_path):
    paths = report.render(typed({"run_id": "x", "module": "scaling_reads"}), tmp_path)
    assert len(paths) == 5
    assert "None recorded." in (tmp_path / "report.md").read_text()


def test_fmt():
    assert fmt(1234.4) == "1,234"
    assert fmt(12000) == "12,000"
    assert fmt(30.123) == "30.1"
    assert fmt(0.41234) == "0.412"
    assert fmt(2.1666, "ratio") == "2.17x"
    assert fmt(0.93, "percent") == "93.0%"
    assert fmt(-4.25, "change") == "-4.2%"
    assert fmt(None) == fmt(float("nan")) == "–"
    assert fmt(False) == "no"
    assert fmt(censored.lt(150)) == "< 150" and fmt(censored.ge(1234.0)) == ">= 1,234"
    assert fmt({"value": 6.0, "censor": "gt"}, "ratio") == "> 6.00x"


def test_sweep_curves_plot_and_knee_table(tmp_path):
    points = [{"rate": r, "achieved": a, "p99_ms": p, "dropped": d, "failure_ratio": 0.0, "held": h, "runs": 1}
              for r, a, p, d, h in ((100, 100, 20, 0, 1), (200, 199, 60, 0, 1), (400, 310, 900, 50, 0))]
    curves = {"sweep": {"bound_ms": 100, "variants": {
        "direct": {"points": points, "passes": [200], "knee_rate": 200},
        "cache_aside": {"points": points[:2], "passes": [censored.ge(200)], "knee_rate": censored.ge(200)}}}}
    run = sample_run(curves=curves)
    run["summary"]["sweep"] = {"direct": {"knee_rate": 200}, "cache_aside": {"knee_rate": censored.ge(200)}}
    paths = report.render(typed(run), tmp_path)
    assert tmp_path / "plots" / "latency_vs_throughput.png" in paths
    assert (tmp_path / "plots" / "latency_vs_throughput.png").read_bytes()[:8] == PNG_MAGIC
    md = (tmp_path / "report.md").read_text()
    assert "## Latency vs throughput: sweep" in md
    assert "Knees: direct 200/s, cache_aside >= 200/s" in md
    assert "| direct | 400 | 310 | 900 | 0.0% | 50 | 0/1 |  |" in md
    assert "| direct | 200 | 199 | 60 | 0.0% | 0 | 1/1 | knee |" in md
    assert "| cache_aside | 200 | 199 | 60 | 0.0% | 0 | 1/1 | held every rate tried |" in md
    assert "| cache_aside | >= 200 |" in md.split("## Summary: sweep")[1]
    assert main_group(typed(run))[0] == "ycsb"  # a swept group is never the plots' main one


def compare_pair() -> tuple[dict, dict]:
    a = sample_run(run_id="20261123T191500Z")
    b = sample_run(run_id="20261124T080000Z")
    a["summary"]["ycsb"]["direct"]["rps"] = 600.0
    b["summary"]["ycsb"]["direct"]["rps"] = 660.0
    b["claims"][2]["status"] = "held"
    return a, b


def test_compare_markdown_shows_change():
    a, b = compare_pair()
    md = report.compare_markdown(typed(a), typed(b))

    assert "A 20261123T191500Z" in md and "B 20261124T080000Z" in md
    assert "| ycsb | direct | rps | 600 | 660 | +10.0% |" in md
    assert "| ycsb | cache_aside | hit_ratio | 93.0% | 93.0% | +0.0% |" in md
    assert "| ycsb |  | claim cache_hit_ratio | failed | held | changed |" in md
    assert "| ycsb |  | claim cache_throughput | held 2.17x | held 2.17x | +0.0% |" in md
    assert "db_queries_per_expiry" in md
    assert md.index("claim cache_throughput") < md.index("| rps |")  # the ratios lead, the absolutes follow
    assert "machine-bound: both on" in md


def test_compare_table_shows_change():
    a, b = compare_pair()
    out = text_of(report.compare_table(typed(a), typed(b)))

    assert "20261123T191500Z" in out and "20261124T080000Z" in out
    assert re.search(r"direct\s+│ rps\s+│\s+600 │\s+660 │\s+\+10\.0% │", out)
    assert re.search(r"claim cache_hit_ratio\s+│\s+failed │\s+held │\s+changed │", out)


def test_verdict_table_has_a_row_per_claim():
    run = sample_run()
    table = report.verdict_table(typed(run))
    out = text_of(table)

    assert table.row_count == len(run["claims"])
    for claim in run["claims"]:
        line = next(line for line in out.splitlines() if f" {claim['id']} " in line)
        assert claim["status"] in line and claim["expression"] in line
    assert re.search(r"held\s+│ cache_throughput .*│\s+2\.17x │\s+2 │", out)
    assert "noop db_queries_per_read has no value" in out  # why, for the ones that fail the run


def test_summary_table_per_group():
    run = sample_run()
    out = text_of(report.summary_table(typed(run), "stampede"))

    assert report.summary_table(typed(run), "stampede").row_count == 2
    assert "DB queries/expiry" in out and "9.5" in out and "noop" not in out
    assert report.summary_table(typed(run)).row_count == 4



def with_demonstrations(run: dict, status: str = "held") -> dict:
    """The sample run with two claims turned into demonstrations (one of them `status`)."""
    for claim in run["claims"]:
        if claim["id"] == "singleflight_stampede":
            claim.update(demonstration="holds by construction of the sample", status=status)
        if claim["id"] == "write_through_fresh":
            claim["demonstration"] = "restates the enforced invariant stale_reads"
    run["passed"] = None  # the gate decides again from the statuses
    return run


def test_demonstrations_are_counted_and_shown_apart_from_the_claims(tmp_path):
    run = with_demonstrations(all_held(sample_run()))
    report.render(typed(run), tmp_path)
    md = (tmp_path / "report.md").read_text()

    assert "**PASSED: claims 2 held; 3/3 invariants held; demonstrations 1 held, 1 not run**" in md
    claims = md.split("## Claims")[1].split("## Demonstrations")[0]
    demonstrations = md.split("## Demonstrations")[1].split("## Invariants")[0]
    assert "cache_throughput" in claims and "singleflight_stampede" not in claims
    assert "write_through_fresh" not in claims
    assert "| held | singleflight_stampede |" in demonstrations
    assert "holds by construction of the sample |" in demonstrations
    assert "| not run | write_through_fresh |" in demonstrations
    assert "a held one is no evidence" in demonstrations and "still fails the run" in demonstrations
    out = text_of(report.verdict_table(typed(run), demonstrations=True))
    assert "singleflight_stampede" in out and "cache_throughput" not in out


def test_a_failed_demonstration_fails_the_run(tmp_path):
    run = with_demonstrations(all_held(sample_run()), status="failed")
    run["passed"] = gate.passed(typed(run))
    assert run["passed"] is False
    report.render(typed(run), tmp_path)
    assert "**FAILED: claims 2 held; 3/3 invariants held; demonstrations 1 failed, 1 not run**" in \
        (tmp_path / "report.md").read_text()


def test_a_run_without_demonstrations_reads_as_before(tmp_path):
    report.render(typed(all_held(sample_run())), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "## Demonstrations" not in md and "demonstrations" not in md.split("\n\n")[1]
    old = {"id": "c", "status": "held"}  # a run.json written before demonstrations
    loaded = record.load(sample_run(claims=[old])).claims[0]
    assert loaded.demonstration == "" and loaded.dump() == old


def test_compare_normalises_absolutes_by_each_run_s_calibration():
    """B ran on a machine 1.5x as fast (its calibration): a 10% rise in rps is a 27% fall on A's machine,
    a p50 that fell by a third is unchanged there; ratios (hit_ratio) are not normalised."""
    a, b = compare_pair()
    a["environment"]["calibration_ops_s"], b["environment"]["calibration_ops_s"] = 100_000, 150_000
    a["summary"]["ycsb"]["direct"]["p50_ms"], b["summary"]["ycsb"]["direct"]["p50_ms"] = 30.0, 20.0
    md = report.compare_markdown(typed(a), typed(b))
    assert "B/A on A's machine" in md and "A 100,000, B 150,000, B/A 1.50" in md
    assert "| ycsb | direct | rps | 600 | 660 | +10.0% | -26.7% |" in md
    assert "| ycsb | direct | p50_ms | 30 | 20 | -33.3% | +0.0% |" in md
    assert "| ycsb | cache_aside | hit_ratio | 93.0% | 93.0% | +0.0% | – |" in md
    uncalibrated = report.compare_markdown(typed(compare_pair()[0]), typed(b))
    assert "B/A on A's machine" not in uncalibrated and "not normalised" in uncalibrated


def test_the_calibration_figure_is_a_positive_rate():
    from harness import calibrate

    assert calibrate.normalised_change("p50_ms", 30, 20, 2.0, 3.0) == pytest.approx(1.0)
    assert calibrate.ops_per_second(bursts=1, burst_s=0.05) > 100
    assert calibrate.normalised_change("rps", 600, 660, 1.0, 1.0) == pytest.approx(1.1)
    assert calibrate.normalised_change("hit_ratio", 0.9, 0.9, 1.0, 2.0) is None
    assert calibrate.normalised_change("rps", 0, 660, 1.0, 2.0) is None
