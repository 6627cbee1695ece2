import json

import pytest

from harness.record import Run
from harness.results import RunNotFound, find_run, load_run, new_run_dir, write_run


def test_run_dirs_are_sortable_and_never_reused(tmp_path):
    a = new_run_dir(tmp_path, "m", now=1_800_000_000)
    b = new_run_dir(tmp_path, "m", now=1_800_000_000)
    c = new_run_dir(tmp_path, "m", now=1_800_000_001)
    assert a.name == "20270115T080000Z" and b.name == "20270115T080000Z-2"
    assert sorted([c.name, b.name, a.name]) == [a.name, b.name, c.name]


def test_find_run_by_every_reference(tmp_path):
    old = new_run_dir(tmp_path, "m", now=1_800_000_000)
    new = new_run_dir(tmp_path, "m", now=1_800_000_100)
    for d in (old, new):
        write_run(d, Run(run_id=d.name, module="m"))
    assert find_run(str(old), tmp_path) == old
    assert find_run(str(old / "run.json"), tmp_path) == old
    assert find_run(f"m/{old.name}", tmp_path) == old
    assert find_run(old.name, tmp_path) == old
    assert find_run("latest", tmp_path) == new
    assert find_run("m:latest", tmp_path) == new
    assert load_run(new).run_id == new.name and json.loads((new / "run.json").read_text()) == {
        "run_id": new.name, "module": "m"}  # only what was set: no invented keys
    with pytest.raises(RunNotFound, match="no run"):
        find_run("nope", tmp_path)
    with pytest.raises(RunNotFound, match="no run"):
        find_run("other:latest", tmp_path)


def test_write_run_replaces_atomically(tmp_path):
    write_run(tmp_path, Run(run_id="a", module="m", title="first"))
    write_run(tmp_path, Run(run_id="a", module="m", title="second"))
    assert json.loads((tmp_path / "run.json").read_text()) == {"run_id": "a", "module": "m", "title": "second"}
    assert not list(tmp_path.glob("*.tmp"))
