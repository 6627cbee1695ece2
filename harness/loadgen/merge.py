"""Results merge: worker deltas added on the master, and the results JSON that `harness run` reads.

Each worker sends what it recorded since its last report inside Locust's own worker report, and its
last samples in one final message when its test stops; the master adds them into its recorder
(exact, never averaged). The results document is written atomically (a temporary file, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness.loadgen.recorder import AGGREGATE, ExactRecorder


class WorkerDeltas:
    """The master's view of its workers: what each reported, and which sent their final delta."""

    def __init__(self, recorder: ExactRecorder) -> None:
        self.recorder = recorder
        self.reset()

    def reset(self) -> None:
        self.counts: dict[str, int] = {}  # measured successful requests each worker reported
        self.cpu_seconds = 0.0
        self.finals: set[str] = set()

    def add(self, client_id: str, delta: dict, final: bool = False) -> None:
        self.recorder.add_delta(delta)
        self.counts[client_id] = self.counts.get(client_id, 0) + delta.get("count", 0)
        self.cpu_seconds += delta.get("cpu_seconds", 0.0)
        if final:
            self.finals.add(client_id)


def document(recorder: ExactRecorder, meta: dict, invariants: list[dict], load_cpu_seconds: float,
             workers: dict[str, int] | None) -> dict:
    """The results JSON: `meta` (module, variant, scenario, load, profile, host, start, measured_start,
    end, users, rate, knobs), the exact results, the open model's counts, load-side CPU and the invariants."""
    exact = recorder.results()
    total = exact["requests"][AGGREGATE]
    sent = total.get("count", 0) + total.get("failures", 0)
    tallies, open_model = exact["tallies"], bool(meta.get("rate"))
    return {
        **meta, **exact,
        "model": "open" if open_model else "closed",
        "arrivals": tallies.get("arrivals", 0) if open_model else None,
        "dropped": tallies.get("dropped_arrivals", 0) if open_model else None,
        "load_cpu_seconds": load_cpu_seconds,
        "load_cpu_us_per_request": load_cpu_seconds / sent * 1e6 if sent else None,
        "workers": dict(sorted(workers.items())) if workers is not None else None,
        "invariants": invariants,
    }


def write_json(path: str | Path, data: dict, indent: int | None = 1) -> None:
    """Write atomically: a reader sees the whole file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=indent)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_text(results: dict) -> str:
    lines = [f"Exact latencies of successful requests after warm-up, variant {results['variant']} (ms, HdrHistogram):",
             f"{'name':<44}{'ok':>9}{'fail':>7}{'p50':>9}{'p95':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"]
    for name, r in results["requests"].items():
        if r.get("count"):
            lines.append(f"{name[:43]:<44}{r['count']:>9}{r['failures']:>7}{r['p50']:>9.3f}{r['p95']:>9.3f}"
                         f"{r['p99']:>9.3f}{r['p999']:>9.3f}{r['max']:>9.3f}")
        elif r.get("failures"):
            lines.append(f"{name[:43]:<44}{0:>9}{r['failures']:>7}")
    errors = results["requests"][AGGREGATE].get("errors") or {}
    if errors:
        lines.append("failures by reason: " + ", ".join(f"{reason} x{n}" for reason, n in errors.items()))
    for inv in results["invariants"]:
        verdict = "ok" if inv["passed"] else ("VIOLATED" if inv["enforced"] else "violated (not enforced: a finding)")
        lines.append(f"invariant {inv['name']}: {inv['value']:g} (expected {inv['expected']}) {verdict} - "
                     f"{inv.get('detail', '')}")
    return "\n".join(lines)
