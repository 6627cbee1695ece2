"""The run record: every committed reference run loads into the typed model, writes back the same
JSON, and re-renders through `harness report` exactly as committed; older shapes stay readable."""

import json
import shutil
from pathlib import Path

import pytest

from harness import cli, record
from harness.record import BenchRun, Run
from harness.results import load_run, write_run

REFERENCE = Path(__file__).parents[2] / "results" / "reference"
RUNS = sorted(p.parent for p in REFERENCE.glob("*/*/run.json"))


def test_there_are_reference_runs_for_every_module_and_the_bench():
    assert {p.parent.name for p in RUNS} >= {"scaling_reads", "scaling_writes", "contention", "large_blobs",
                                            "realtime", "bench"}


@pytest.mark.parametrize("run_dir", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_reference_run_loads_and_writes_back_the_same_json(run_dir, tmp_path):
    stored = json.loads((run_dir / "run.json").read_text())
    run = load_run(run_dir)
    assert isinstance(run, BenchRun if run_dir.parent.name == "bench" else Run)
    write_run(tmp_path, run)
    written = json.loads((tmp_path / "run.json").read_text())
    assert written == stored and list(written) == list(stored)  # same keys, same order, nothing dropped


@pytest.mark.parametrize("run_dir", [max(p for p in RUNS if p.parent.name == m)
                                     for m in sorted({p.parent.name for p in RUNS})], ids=lambda p: p.parent.name)
def test_harness_report_re_renders_one_run_per_module_as_committed(run_dir, tmp_path):
    copy = tmp_path / run_dir.name
    copy.mkdir()
    shutil.copy(run_dir / "run.json", copy / "run.json")
    if (run_dir / "dashboard.json").is_file():  # the queried panels a report draws its dashboard from
        shutil.copy(run_dir / "dashboard.json", copy / "dashboard.json")
    assert cli.main(["report", str(copy)]) == 0
    assert (copy / "report.md").read_text() == (run_dir / "report.md").read_text()
    assert (copy / "report.html").is_file()


def test_an_old_shape_reads_with_its_gaps_filled_in_the_loader():
    phase = {"index": 1, "scenario": "ycsb", "variant": "direct", "requests": 10, "failures": 0,
             "invariants": [{"name": "lost_writes", "value": 1, "expected": "== 0", "passed": False}],
             "a_key_from_the_future": [1, 2]}
    run = record.load({"run_id": "old", "module": "scaling_reads", "phases": [phase],
                       "invariants": [{"name": "lost_writes", "value": 1, "expected": "== 0", "passed": False}],
                       "summary": {"ycsb": {"direct": {"rps": 5, "hit_ratio": None}}}})
    assert isinstance(run, Run) and run.phases[0].group_name == "ycsb"
    # before `enforced` was recorded, the gate failed on every violation: the loader says so once
    assert run.phases[0].invariants[0].enforced is True and run.invariants[0].status == "violated"
    assert run.phases[0].model_extra == {"a_key_from_the_future": [1, 2]}  # kept, not dropped
    direct = run.summary["ycsb"]["direct"]
    assert direct.get("rps") == 5 and direct.has("hit_ratio") and direct.get("hit_ratio") is None
    assert not direct.has("failures") and direct.get("failures") is None  # absent stays absent
    assert record.load({"kind": "bench", "run_id": "b", "module": "scaling_reads"}).kind == "bench"


def test_a_live_invariant_result_without_enforced_is_refused():
    with pytest.raises(ValueError, match="enforced"):
        record.Phase.model_validate({"index": 1, "scenario": "s", "variant": "v", "invariants": [
            {"name": "lost_writes", "value": 0, "expected": "== 0", "passed": True}]})
