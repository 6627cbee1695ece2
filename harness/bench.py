"""`harness bench <module>`: what the harness and the pattern cost on their hot paths, side by side.

On a 2-core machine the load generator, the target and the stores share the CPU, so every
microsecond the harness spends on itself is taken from the system it measures. Two ratios say how
well it does, each measured by alternating its two sides `repeat` times in one run (A B A B) and
comparing medians:

1. **The target's fast path against its trivial endpoint.** wrk (a C load generator, light enough to
   leave the target its CPU) drives the spec's `hot_path.fast` variant (a cache hit) and its
   `hot_path.floor` variant (no I/O) in turn, over the same keys, all requested once before (so a
   cache holds them). The target's own counters give the window's throughput and CPU per request
   (`harness_http_responses_total`, `process_cpu_seconds_total`). Ratio: fast / floor throughput;
   the target is >= `hot_path.min_ratio`.
2. **The harness's load side against bare Locust.** The module's locustfile (exact recording and the
   exporter on, with `hot_path.locust_args` so that it sends the same reads over the same keys) and
   a bare FastHttpUser locustfile (harness/bench_bare.py) run in turn against the floor variant with
   the same users and duration. Locust's CPU seconds over the window (/proc/<pid>/stat) are divided
   by the requests the target answered in it. Ratio: harness / bare; the target is <=
   `hot_path.max_load_ratio`.

Each measurement skips a warm-up and then reads its counters at the start and end of a fixed
window. A measurement with a failed response, a load generator that exited early, or no request
is unmeasured, and so is a ratio built on it: never a pass. The run is written like any other:
results/bench/<run-id>/ with run.json, report.md and report.html.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import results
from harness.modules import locustfile, url
from harness.pids import stat_fields
from harness.record import BenchRun
from harness.settings import Settings
from harness.spec import HotPath, ModuleSpec

BARE_LOCUSTFILE = Path(__file__).with_name("bench_bare.py")
GRACE_S = 30.0  # a load generator still running this long after its run time is killed


class BenchError(RuntimeError):
    """The bench cannot measure: a missing tool, a module without a hot path, a target that fails."""


@dataclass(frozen=True)
class Options:
    duration_s: float = 15.0
    warmup_s: float = 5.0
    connections: int = 32
    users: int = 32
    repeat: int = 3

    def problems(self) -> list[str]:
        return [text for bad, text in (
            (self.duration_s < 2, f"--duration must be at least 2 s, got {self.duration_s:g}"),
            (self.warmup_s < 2, f"--warmup must be at least 2 s (Locust needs it to start), got {self.warmup_s:g}"),
            (not 1 <= self.connections <= 1000, f"--connections must be 1..1000, got {self.connections}"),
            (not 1 <= self.users <= 1000, f"--users must be 1..1000, got {self.users}"),
            (not 1 <= self.repeat <= 10, f"--repeat must be 1..10, got {self.repeat}"),
        ) if bad]


# --- reading the target's counters and a process's CPU time -------------------------------------
def target_counters(base_url: str, module: str, variant: str) -> dict:
    """The target's answers to `variant` so far (2xx and others) and its CPU seconds."""
    try:
        text = requests.get(f"{base_url}/metrics", timeout=10).text
    except requests.RequestException as exc:
        raise BenchError(f"the target at {base_url} does not answer /metrics: {exc}") from None
    ok = other = 0.0
    cpu = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "process_cpu_seconds_total":
                cpu = sample.value
            elif (sample.name == "harness_http_responses_total" and sample.labels.get("module") == module
                  and sample.labels.get("variant") == variant):
                if sample.labels.get("status", "").startswith("2"):
                    ok += sample.value
                else:
                    other += sample.value
    if cpu is None:
        raise BenchError(f"the target at {base_url} exports no process_cpu_seconds_total (not on Linux?)")
    return {"ok": ok, "other": other, "cpu_s": cpu}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), its threads included."""
    fields = stat_fields(pid)
    if fields is None:
        raise BenchError(f"process {pid} is gone (its CPU time cannot be read)")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def window(before: dict, after: dict, seconds: float) -> dict:
    """Throughput and CPU per request between two readings of the target's counters."""
    answered, failed = after["ok"] - before["ok"], after["other"] - before["other"]
    return {"requests": int(answered), "failed": int(failed), "seconds": round(seconds, 3),
            "requests_per_s": round(answered / seconds, 1) if seconds > 0 else None,
            "target_cpu_us": round((after["cpu_s"] - before["cpu_s"]) / answered * 1e6, 1) if answered else None}


def unmeasured_reason(m: dict) -> str | None:
    """Why a measurement cannot count, or None when it can."""
    if m.get("error"):
        return m["error"]
    if m["failed"]:
        return f"{m['failed']} responses were not 2xx"
    if not m["requests"]:
        return "no request was answered in the window"
    return None


# --- the two sides ---------------------------------------------------------------------------
def wrk_script(prefix: str, suffix: str, keys: int) -> str:
    """wrk's Lua: every connection walks the keys 1..keys in turn."""
    return ("local n = 0\nrequest = function()\n  n = n + 1\n"
            f"  return wrk.format(\"GET\", {json.dumps(prefix)} .. ((n % {keys}) + 1) .. {json.dumps(suffix)})\n"
            "end\n")


def parse_wrk(output: str) -> dict:
    """What wrk itself says: its request rate, non-2xx/3xx responses and socket errors."""
    found = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        found["requests_per_s"] = float(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        found["non_2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        found["socket_errors"] = sum(map(int, m.groups()))
    return found


def preflight(spec: ModuleSpec) -> str:
    """What the bench needs before it starts anything: a hot path in the spec, and wrk; wrk's path."""
    if spec.hot_path is None:
        raise BenchError(f"module {spec.id} declares no hot path to bench (ModuleSpec.hot_path)")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed: `apt-get install wrk` (scripts/install.sh installs it)")
    return wrk


class Bench:
    def __init__(self, spec: ModuleSpec, settings: Settings, options: Options, run_dir: Path,
                 say: Callable[[str], None]) -> None:
        self.wrk_path = preflight(spec)
        self.spec, self.hot, self.settings, self.options, self.run_dir, self.say = (
            spec, spec.hot_path, settings, options, run_dir, say)
        self.base = url(spec)

    def warm(self) -> None:
        """Request every key of the fast variant once: the measured requests are all hits."""
        prefix, _, suffix = self.hot.path.partition("{key}")
        with requests.Session() as session:
            for key in range(1, self.hot.keys + 1):
                response = session.get(f"{self.base}/{self.hot.fast}{prefix}{key}{suffix}", timeout=30)
                if response.status_code != 200:
                    raise BenchError(f"warming {self.hot.fast}: GET {response.url} answered {response.status_code}: "
                                     f"{response.text[:200]}")

    def wrk(self, variant: str, repetition: int) -> dict:
        prefix, _, suffix = self.hot.path.partition("{key}")
        script = self.run_dir / f"wrk-{variant}.lua"
        script.write_text(wrk_script(f"/{variant}{prefix}", suffix, self.hot.keys))
        o = self.options
        command = [self.wrk_path, "-t1", f"-c{o.connections}", f"-d{o.warmup_s + o.duration_s + 1:g}s",
                   "--timeout", "5s", "-s", str(script), self.base]
        with _bounded(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       stdin=subprocess.DEVNULL)) as process:
            m = self._window(variant, process, None)
            try:
                output, _ = process.communicate(timeout=o.duration_s + GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
                m["error"] = "wrk overran its run time and was killed"
        m.update(side="target", variant=variant, repetition=repetition, wrk=parse_wrk(output))
        if process.returncode not in (0, None) and not m.get("error"):
            m["error"] = f"wrk exited {process.returncode}: {output.strip()[-300:]}"
        elif m["wrk"].get("non_2xx") or m["wrk"].get("socket_errors"):
            m["error"] = m.get("error") or f"wrk saw errors: {m['wrk']}"
        self.say(f"target {variant:<14} rep {repetition}: {_rate(m)} req/s, target CPU {_num(m['target_cpu_us'])} "
                 f"us/request{_flag(m)}")
        return m

    def locust(self, which: str, repetition: int) -> dict:
        o, hot = self.options, self.hot
        common = ["--headless", "--host", self.base, "-u", str(o.users), "-r", str(o.users),
                  "-t", f"{o.warmup_s + o.duration_s + 2:g}s", "--only-summary", "--loglevel", "WARNING",
                  "--stop-timeout", "2"]
        env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
        if which == "bare":
            command = [sys.executable, "-m", "locust", "-f", str(BARE_LOCUSTFILE), *common]
            env.update(HARNESS_BENCH_PATH=f"/{hot.floor}{hot.path}", HARNESS_BENCH_KEYS=str(hot.keys),
                       HARNESS_BENCH_NAME=hot.name)
        else:
            command = [sys.executable, "-m", "locust", "-f", str(locustfile(self.spec)), *common,
                       "--variant", hot.floor, "--no-stack", "--run-id", "bench", *hot.locust_args]
        log_path = self.run_dir / f"locust-{which}-{repetition}.log"
        with log_path.open("w") as log, _bounded(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                                  env=env, stdin=subprocess.DEVNULL)) as process:
            m = self._window(hot.floor, process, process.pid)
            try:
                process.wait(timeout=o.duration_s + GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                m["error"] = "Locust overran its run time and was killed"
        m.update(side="load", locust=which, repetition=repetition)
        if process.returncode != 0 and not m.get("error"):
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
            m["error"] = f"Locust exited {process.returncode} (failed requests?); {log_path}: {tail}"
        self.say(f"load   {which:<14} rep {repetition}: {_rate(m)} req/s, Locust CPU {_num(m.get('load_cpu_us'))} "
                 f"us/request{_flag(m)}")
        return m

    def _window(self, variant: str, process: subprocess.Popen, pid: int | None) -> dict:
        """Wait out the warm-up, then read the counters (and the load generator's CPU) around the window."""
        time.sleep(self.options.warmup_s)
        if process.poll() is not None:
            return {"requests": 0, "failed": 0, "requests_per_s": None, "target_cpu_us": None,
                    "error": f"the load generator exited {process.returncode} during the warm-up"}
        before, cpu_before, t0 = target_counters(self.base, self.spec.id, variant), pid and process_cpu_s(pid), \
            time.monotonic()
        time.sleep(self.options.duration_s)
        if process.poll() is not None:
            return {"requests": 0, "failed": 0, "requests_per_s": None, "target_cpu_us": None,
                    "error": f"the load generator exited {process.returncode} before the window ended"}
        after, cpu_after = target_counters(self.base, self.spec.id, variant), pid and process_cpu_s(pid)
        m = window(before, after, time.monotonic() - t0)
        if pid:
            m["load_cpu_s"] = round(cpu_after - cpu_before, 2)
            m["load_cpu_us"] = round((cpu_after - cpu_before) / m["requests"] * 1e6, 1) if m["requests"] else None
        return m


@contextlib.contextmanager
def _bounded(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The load generator dies with the bench: interrupted or failed, nothing is left running."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()


# --- verdicts ----------------------------------------------------------------------------------
def _median(measurements: list[dict], key: str) -> float | None:
    values = [m[key] for m in measurements if m.get(key) is not None]
    return statistics.median(values) if values else None


def verdict(measurements: list[dict], by: str, a: str, b: str, key: str, op: str, bound: float) -> dict:
    """Ratio of the medians of `key` for side `a` over side `b` (grouped by `by`), against `bound`."""
    sides = {name: [m for m in measurements if m.get(by) == name] for name in (a, b)}
    problems = [f"{m.get(by)} rep {m.get('repetition')}: {reason}" for m in measurements
                if (reason := unmeasured_reason(m))]
    medians = {name: _median(ms, key) for name, ms in sides.items()}
    result = {"numerator": a, "denominator": b, "key": key, "medians": medians, "bound": f"{op} {bound:g}",
              "ratio": None}
    if any(not ms for ms in sides.values()):
        problems.append("a side was never measured")
    if problems or not medians[b] or medians[a] is None:
        return {**result, "status": "unmeasured", "reason": "; ".join(problems) or "no median"}
    ratio = medians[a] / medians[b]
    held = ratio >= bound if op == ">=" else ratio <= bound
    return {**result, "ratio": round(ratio, 3), "status": "met" if held else "missed"}


def conclude(run: BenchRun) -> BenchRun:
    hot, ms = run.hot_path, run.measurements
    target = [m for m in ms if m["side"] == "target"]
    load = [m for m in ms if m["side"] == "load"]
    cpu = verdict(target, "variant", hot["fast"], hot["floor"], "target_cpu_us", "<=", 1 / hot["min_ratio"])
    run.target = {**verdict(target, "variant", hot["fast"], hot["floor"], "requests_per_s", ">=", hot["min_ratio"]),
                  # what the throughput ratio comes from: the target is the bottleneck
                  "cpu_ratio": cpu["ratio"], "cpu_medians": cpu["medians"]}
    run.load = verdict(load, "locust", "harness", "bare", "load_cpu_us", "<=", hot["max_load_ratio"])
    if not run.exporter_port:
        run.load.update(status="unmeasured", reason="the load-side exporter was off (HARNESS_LOADGEN_METRICS_PORT=0)")
    run.passed = run.target["status"] == "met" and run.load["status"] == "met"
    return run


def execute(spec: ModuleSpec, settings: Settings, options: Options,
            say: Callable[[str], None] = lambda line: None) -> tuple[BenchRun, Path]:
    """Ensure the stack, measure both sides, write results/bench/<run-id>/; returns the run and its directory."""
    from harness.run import environment
    from harness.stack import Stack, services_for

    preflight(spec)  # before the stack starts
    services = services_for(spec)
    Stack(settings).up(services)
    run_dir = results.new_run_dir(settings.results_dir, "bench")
    hot: HotPath = spec.hot_path
    run = BenchRun(kind="bench", run_id=run_dir.name, module=spec.id, title=f"{spec.title}: hot paths",
                   created=_iso(time.time()), parameters={**options.__dict__, "host": url(spec)},
                   hot_path=hot.model_dump(), exporter_port=settings.loadgen_metrics_port,
                   environment=environment(settings, services), measurements=[])
    bench = Bench(spec, settings, options, run_dir, say)
    started = time.time()
    try:
        bench.warm()
        for repetition in range(1, options.repeat + 1):
            for variant in (hot.floor, hot.fast):
                run.measurements.append(bench.wrk(variant, repetition))
                results.write_run(run_dir, run)
        for repetition in range(1, options.repeat + 1):
            for which in ("bare", "harness"):
                run.measurements.append(bench.locust(which, repetition))
                results.write_run(run_dir, run)
    except BaseException as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        conclude(run)
        run.finished, run.duration_s = _iso(time.time()), round(time.time() - started, 1)
        results.write_run(run_dir, run)
        render(run, run_dir)
    return run, run_dir


# --- the report ----------------------------------------------------------------------------------
def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _rate(m: dict) -> str:
    return _num(m.get("requests_per_s"), 0)


def _flag(m: dict) -> str:
    reason = unmeasured_reason(m)
    return f"  UNMEASURED: {reason}" if reason else ""


def verdict_line(name: str, v: dict) -> str:
    ratio = "n/a" if v.get("ratio") is None else f"{v['ratio']:.2f}x"
    medians = v.get("medians") or {}
    of = " / ".join(f"{side} {_num(medians.get(side))}" for side in (v.get("numerator"), v.get("denominator")))
    text = f"{name}: {ratio} ({of}, medians; target {v['bound']}): {v['status'].upper()}"
    return text + (f" ({v['reason']})" if v.get("reason") else "")


def blocks(run: BenchRun) -> list[tuple]:
    hot, p = run.hot_path, run.parameters
    target, load = run.target or {}, run.load or {}
    lines = [verdict_line(f"fast path vs trivial endpoint ({hot['fast']} / {hot['floor']} throughput)", target),
             verdict_line("harness load side vs bare Locust (CPU per request)", load)]
    out = [("h", 1, f"{run.title}: bench {run.run_id}"),
           ("verdict", bool(run.passed), "MET" if run.passed else "NOT MET"),
           ("p", f"Module {run.module}, started {run.created}, finished {run.finished}, took "
                 f"{run.duration_s} s; {p['repeat']} repetitions per side, alternated, medians compared; "
                 f"each measurement is a {p['duration_s']:g} s window after {p['warmup_s']:g} s of warm-up. "
                 f"`harness bench {run.module}` made it.")]
    if run.error:
        out.append(("p", f"The bench stopped early: {run.error}"))
    out += [("kv", [(line.split(": ", 1)[0], line.split(": ", 1)[1]) for line in lines])]
    out += [("h", 2, "The target: fast path vs trivial endpoint, under wrk"),
            ("p", f"wrk, 1 thread, {p['connections']} connections, GET /<variant>{hot['path']} over keys "
                  f"1..{hot['keys']} (each requested once before). Throughput and CPU per request from the target's "
                  f"own counters. CPU ratio (floor / fast): {_num(_inverse(target.get('cpu_ratio')), 2)}."),
            ("table", ["variant", "rep", "req/s", "target CPU us/request", "wrk req/s", "note"],
             [[m["variant"], str(m["repetition"]), _rate(m), _num(m.get("target_cpu_us")),
               _num((m.get("wrk") or {}).get("requests_per_s"), 0), unmeasured_reason(m) or ""]
              for m in run.measurements if m["side"] == "target"])]
    out += [("h", 2, "The load side: the harness's locustfile vs bare Locust"),
            ("p", f"{p['users']} users, no think time, against {hot['floor']}; the harness's locustfile with "
                  f"{' '.join(hot['locust_args']) or 'no extra arguments'}, exact recording and the exporter on "
                  f"(port {run.exporter_port or 'off'}); bare Locust is harness/bench_bare.py. CPU of the "
                  f"Locust process over the window, per request the target answered in it."),
            ("table", ["locust", "rep", "req/s", "Locust CPU us/request", "note"],
             [[m["locust"], str(m["repetition"]), _rate(m), _num(m.get("load_cpu_us")), unmeasured_reason(m) or ""]
              for m in run.measurements if m["side"] == "load"])]
    env = run.environment.dump()
    out += [("h", 2, "Environment"), ("kv", [(k, str(v)) for k, v in env.items()])]
    return out


def _inverse(value: float | None) -> float | None:
    return 1 / value if value else None


def render(run: BenchRun, run_dir: Path) -> list[Path]:
    from harness.document import html_page, markdown
    from harness.report import CSS, _html_class

    page = blocks(run)
    md_path, html_path = Path(run_dir) / "report.md", Path(run_dir) / "report.html"
    md_path.write_text(markdown(page), encoding="utf-8")
    html_path.write_text(html_page(page, {}, CSS, _html_class), encoding="utf-8")
    return [md_path, html_path]


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
