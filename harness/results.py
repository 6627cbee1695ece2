"""Where runs are written: results/<module>/<run-id>/, run-ids sortable by time, never overwritten."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import ValidationError

from harness import record
from harness.record import BenchRun, Run


class RunNotFound(LookupError):
    pass


def new_run_dir(results_dir: Path, module: str, now: float | None = None) -> Path:
    """Create a fresh directory; a second run in the same second gets a suffix, nothing is reused."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    parent = results_dir / module
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a new run directory under {parent}")


def write_run(run_dir: Path, run: Run | BenchRun) -> Path:
    """Write run.json atomically, so an interrupted run still leaves a readable file."""
    path = run_dir / "run.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(run.dump(), indent=2, default=str))
    tmp.replace(path)
    return path


def find_run(ref: str, results_dir: Path) -> Path:
    """A run by directory, by run.json path, by `module/run-id`, by run-id, or `latest`/`module:latest`."""
    candidates = [Path(ref), Path(ref).parent if ref.endswith("run.json") else None, results_dir / ref]
    for candidate in filter(None, candidates):
        if (candidate / "run.json").is_file():
            return candidate
    runs = sorted(results_dir.glob("*/*/run.json"), key=lambda p: p.parent.name)
    module, _, which = ref.rpartition(":") if ":" in ref else ("", "", ref)
    if which == "latest":
        matching = [p for p in runs if not module or p.parent.parent.name == module]
        if matching:
            return matching[-1].parent
    else:
        matching = [p for p in runs if p.parent.name == ref]
        if len(matching) == 1:
            return matching[0].parent
        if len(matching) > 1:
            raise RunNotFound(f"run id {ref} exists in several modules; say module/{ref}")
    raise RunNotFound(f"no run {ref!r} under {results_dir} (give a run directory, module/run-id, or latest)")


def load_run(run_dir: Path) -> Run | BenchRun:
    """run.json as its typed record; any shape a committed run has is readable (harness/record.py)."""
    path = run_dir / "run.json"
    try:
        return record.load(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunNotFound(f"cannot read {path}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise RunNotFound(f"{path} is not a run record: {problems}") from None
