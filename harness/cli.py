"""The `harness` command: a thin layer over stack, run, results and report.

Exit codes: 0 ok; 1 a claim failed, was unmeasured or invalid, or an invariant a variant claims was
violated; 2 bad input (arguments, env settings, a module spec); 3 a service or the load generator failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.modules import BadSpec, UnknownModule, get_module, loadable, modules
from harness.settings import get_settings

# Piped output (CI logs, `| tee`) would otherwise wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


def cmd_up(args) -> int:
    """Start the embedded stack (PostgreSQL, Redis, Prometheus, targets) on loopback."""
    from harness.stack import Stack, services_for

    chosen = [get_module(m) for m in args.modules] or list(modules().values())
    names = list(dict.fromkeys(n for m in chosen for n in services_for(m)))
    Stack(get_settings()).up(names, on_event=lambda n, msg: console.print(f"{n:<16} {msg}"))
    return 0


def cmd_down(args) -> int:
    """Stop exactly the processes `harness up` started (compose or system services are left alone)."""
    from harness.stack import Stack

    Stack(get_settings()).down(on_event=lambda n, msg: console.print(f"{n:<16} {msg}"))
    return 0


def cmd_status(args) -> int:
    """Show each service: port, health, and whether the harness owns it."""
    from harness.stack import Stack

    table = Table("service", "port", "healthy", "owner", "pid", "log")
    rows = Stack(get_settings()).status()
    for r in rows:
        table.add_row(r["service"], str(r["port"]), "[green]yes[/]" if r["healthy"] else "[red]no[/]",
                      r["owner"], str(r["pid"] or "-"), r["log"] or "-")
    console.print(table)
    return 0


class RichProgress:
    def __init__(self) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console)
        self.task = None
        self.progress_metrics: list[tuple[str, str, str]] = []

    def run_started(self, run_dir: Path, run, estimate_s: float) -> None:
        from harness.presentation import metric_format, presentation

        self.progress_metrics = [(k, *metric_format(run, k)) for k in presentation(run)["progress"]]
        console.print(f"run [bold]{run_dir.name}[/]: about {estimate_s / 60:.0f} min of load at most, "
                      f"writing {run_dir}")
        self.bar.start()
        self.task = self.bar.add_task("starting", total=estimate_s)

    def phase_started(self, spec) -> None:
        rate = f" at {spec.rate:g}/s" if spec.rate else ""
        self.bar.update(self.task, description=f"phase {spec.index} {spec.group}/{spec.variant} "
                                               f"rep {spec.repetition}{rate} ({spec.users} users)")

    def tick(self) -> None:
        self.bar.advance(self.task, 0.25)

    def phase_done(self, record) -> None:
        from harness import noise
        from harness.presentation import fmt

        latency, server = record.latency_ms, record.server
        extra = "".join(f" {label} {fmt(server.get(key), kind)}" for key, label, kind in self.progress_metrics
                        if server.get(key) is not None)
        rate = f" rate {record.rate:g}/s dropped {record.dropped or 0}" if record.rate else ""
        over = " [red]OVER BUDGET[/]" if record.over_budget and record.step is None else ""
        faults = "".join(f" fault {f.action} {f.service}{' [red]' + f.error + '[/]' if f.error else ''}"
                         for f in record.faults)
        noisy = (f" [yellow]noisy host: foreign CPU {fmt(record.noise.foreign_share, 'percent')}[/]"
                 if noise.noisy(record.noise) else "")
        self.bar.console.print(
            f"  {record.index:>2} {record.group:<14} {record.variant:<26} {(record.rps or 0):>8.0f} ok/s"
            f"  p50 {latency['p50'] or 0:7.2f} ms  p99 {latency['p99'] or 0:7.2f} ms  failed {record.failures}"
            f"{over}{extra}{rate}{faults}{noisy}")

    def stop(self) -> None:
        self.bar.stop()


def cmd_run(args) -> int:
    """Run a module's variants side by side, check its claims, write results and a report."""
    from harness.plan import make_plan
    from harness.run import execute

    spec = get_module(args.module)
    repeat = spec.repeat if args.repeat is None else args.repeat
    plan = make_plan(spec, args.variants, args.scenarios, profile=args.profile,
                     users=args.users, duration_s=args.duration, warmup_s=args.warmup, repeat=repeat,
                     model=args.model, rate=args.rate, arrivals=args.arrivals, knee_p99_ms=args.knee_p99_ms,
                     sweep_cap_s=args.sweep_cap, processes=args.processes, locust_args=args.locust_args)
    progress = RichProgress()
    try:
        run, run_dir = execute(plan, get_settings(), progress)
    finally:
        progress.stop()
    _print_run(run, run_dir)
    console.print("the stack keeps running for the next run; `harness down` stops it")
    return 0 if run.passed or args.no_fail else 1


INVARIANT_MARKS = {"held": "[green]ok[/]", "violated": "[red]VIOLATED[/]",
                   "finding": "[yellow]finding (not claimed by this variant)[/]"}


def _print_run(run, run_dir: Path) -> None:
    from harness import gate, report

    for group in run.summary:
        console.print(report.summary_table(run, group))
    console.print(report.verdict_table(run))
    if any(c.demonstration for c in run.claims):
        console.print(report.verdict_table(run, demonstrations=True))
    for inv in run.invariants:
        console.print(f"invariant {inv.name} {inv.scenario}/{inv.variant}: {inv.value} "
                      f"(expected {inv.expected}) {INVARIANT_MARKS[inv.status]}")
    for fault in run.faults:  # the windows, for Grafana annotations or a second look
        console.print(f"fault phase {fault.phase}: {fault.action} {fault.service} from {fault.begin} to "
                      f"{fault.end} (epoch s){'; ' + fault.error if fault.error else ''}")
    verdict = "[bold green]PASSED[/]" if run.passed else "[bold red]FAILED[/]"
    console.print(f"{verdict}  {escape(gate.tally(run))}")
    console.print(f"report: {run_dir / 'report.html'}  ({run_dir / 'report.md'})")


def cmd_bench(args) -> int:
    """Measure a module's hot paths side by side: its fast path vs a trivial endpoint (wrk), and the
    harness's load side vs bare Locust (CPU per request); write results/bench/<run-id>/."""
    from harness import bench

    spec = get_module(args.module)
    options = bench.Options(duration_s=args.duration, warmup_s=args.warmup, connections=args.connections,
                            users=args.users, repeat=args.repeat)
    benched = [m.id for m in loadable()[0].values() if m.hot_path is not None]
    problems = options.problems() + ([] if spec.hot_path else [
        f"module {spec.id} declares no hot path to bench (ModuleSpec.hot_path); these do: {', '.join(benched)}"])
    if problems:
        console.print(f"[red]error:[/] {escape('; '.join(problems))}")
        return 2
    est = options.repeat * 4 * (options.warmup_s + options.duration_s + 2)
    console.print(f"bench {spec.id}: about {est / 60:.0f} min ({options.repeat} repetitions of 4 measurements)")
    run, run_dir = bench.execute(spec, get_settings(), options, say=lambda line: console.print(escape(line)))
    for name, key in (("target", "fast path vs trivial endpoint"), ("load", "harness load side vs bare Locust")):
        console.print(escape(bench.verdict_line(key, getattr(run, name))))
    verdict = "[bold green]MET[/]" if run.passed else "[bold red]NOT MET[/]"
    console.print(f"{verdict}  report: {run_dir / 'report.html'}  ({run_dir / 'run.json'})")
    console.print("the stack keeps running; `harness down` stops it")
    return 0 if run.passed or args.no_fail else 1


def cmd_report(args) -> int:
    """Render report.md, report.html and plots again from a run's run.json."""
    from harness import report
    from harness.record import BenchRun
    from harness.results import find_run, load_run

    run_dir = find_run(args.run, get_settings().results_dir)
    run = load_run(run_dir)
    if isinstance(run, BenchRun):
        from harness import bench

        paths = bench.render(run, run_dir)
    else:
        paths = report.render(run, run_dir)
    for path in paths:
        console.print(f"wrote {path}")
    return 0


def cmd_compare(args) -> int:
    """Put two runs side by side: each claim's verdict and ratio first, then the summary metrics and their change.

    Also writes compare.md and compare.html with both runs' dashboards side by side, panel by panel.
    """
    from harness import dashboard, report
    from harness.record import BenchRun
    from harness.results import RunNotFound, find_run, load_run

    settings = get_settings()
    dirs = [find_run(ref, settings.results_dir) for ref in (args.run_a, args.run_b)]
    a, b = (load_run(run_dir) for run_dir in dirs)
    if isinstance(a, BenchRun) or isinstance(b, BenchRun):
        raise RunNotFound("compare takes two module runs; a bench run's report.md has its own comparison")
    console.print(report.compare_table(a, b))
    console.print(report.machines_note(a, b))
    out = Path(args.out) if args.out else settings.results_dir / b.module / f"compare-{a.run_id}-vs-{b.run_id}"
    side_by_side = dashboard.compare(*dirs, f"{a.module} {a.run_id}", f"{b.module} {b.run_id}",
                                     out / "plots" / "dashboards.png")
    for path in report.compare_page(a, b, out, side_by_side):
        console.print(f"wrote {path}")
    if side_by_side is None:
        console.print("no dashboards side by side: a run has no dashboard.json (made before runs stored them)")
    return 0


def cmd_list(args) -> int:
    """List modules with their variants, scenarios and claims; a spec that does not load is named with
    its error (exit 2), the others are listed."""
    specs, broken = loadable()
    for spec in specs.values():
        console.print(f"[bold]{spec.id}[/] ({spec.title}), target port {spec.port}, services: "
                      f"{', '.join(spec.services)}")
        for variant in spec.variants:
            default = " (default)" if variant.name in spec.default_variants else ""
            console.print(f"  variant  {variant.name:<26} {escape(variant.sentence)}{default}")
        for scenario in spec.scenarios:
            console.print(f"  scenario {scenario.name:<26} {escape(_describe(spec, scenario))}")
            if scenario.description:
                console.print(f"           {'':<26} {escape(scenario.description)}")
        for claim in spec.claims:
            kind = "demo    " if claim.demonstration else "claim   "
            console.print(f"  {kind} {claim.id:<26} \\[{claim.scenario}] {claim.expression}")
            console.print(f"           {'':<26} {escape(claim.sentence)}")
    for exc in broken.values():
        console.print(f"[red]error:[/] {escape(str(exc))}")
    return 2 if broken else 0


def cmd_generate(args) -> int:
    """Render the specs' parts of compose.yaml and the Prometheus config (module services, target URLs,
    scrape targets); --check only names the stale files (exit 1)."""
    from harness import generate

    project_dir = get_settings().project_dir
    try:
        paths = (generate.stale if args.check else generate.write)(project_dir, modules())
    except generate.GenerateError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    for path in paths:
        console.print(f"stale: {path} (run `harness generate`)" if args.check else f"wrote {path}")
    if not paths:
        console.print("up to date")
    return 1 if args.check and paths else 0


def _describe(spec, scenario) -> str:
    parts = [f"variants: {', '.join(spec.scenario_variants(scenario.name))}"]
    parts += [f"load {load.name}: " + (f"{load.rate:g}/s" if load.rate else "closed model") for load in scenario.loads]
    if scenario.sweep:
        s = scenario.sweep
        parts.append(f"sweep from {s.start_rate:g}/s x{s.factor:g} until p99 > {s.p99_bound_ms:g} ms "
                     f"(at most {s.max_steps} steps, {s.time_cap_s:g} s a pass)")
    parts += [f"fault {f.action} {f.service} at {f.at_s:g} s for {f.duration_s:g} s" for f in scenario.faults]
    parts += [f"knob {k.service}.{k.name}={k.value}" for k in scenario.knobs]
    own = ", ".join(f"{variant} {budget:.0%}" for variant, budget in scenario.error_budgets.items())
    parts.append(f"error budget {scenario.error_budget:.0%}{f' ({own})' if own else ''}")
    if scenario.name in spec.default_scenarios:
        parts.append("default")
    return "; ".join(parts)


def parser() -> argparse.ArgumentParser:
    from harness.shapes import PROFILES

    root = argparse.ArgumentParser(prog="harness", description=__doc__.split("\n")[0],
                                   epilog="Every address is overridable by env: HARNESS_PG_PORT, "
                                          "HARNESS_REDIS_PORT, HARNESS_PROMETHEUS_PORT, ... (see README).")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, **kwargs):
        doc = func.__doc__
        p = sub.add_parser(name, help=doc.split("\n")[0], description=doc, **kwargs)
        p.set_defaults(func=func)
        return p

    add("up", cmd_up).add_argument("modules", nargs="*", help="only these modules' services (default: all)")
    add("down", cmd_down)
    add("status", cmd_status)
    run = add("run", cmd_run, epilog="Arguments after `--` go to every Locust process unchanged, "
                                     "e.g. `-- --write-ratio 0`.")
    run.add_argument("module")
    run.add_argument("--variants", nargs="+", metavar="VARIANT", help="default: all of the module's")
    run.add_argument("--scenarios", nargs="+", metavar="SCENARIO", help="default: all of the module's")
    run.add_argument("--profile", default="steady", choices=list(PROFILES))
    run.add_argument("--users", type=int,
                     help="users per phase: the closed model's load, the open model's pool (default: the "
                          "scenario's, else 32)")
    run.add_argument("--duration", type=float, help="measured seconds per phase (default: the scenario's, else 20)")
    run.add_argument("--warmup", type=float, help="seconds left out at each phase's start (default: the "
                                                   "scenario's, else 5)")
    run.add_argument("--repeat", type=int, help="repetitions of each variant, interleaved (a sweep: passes; "
                                                "default: the module's, else 2)")
    run.add_argument("--model", choices=["closed", "open"],
                     help="closed: users with no think time (max throughput); open: fixed arrival rate, latency "
                          "from each arrival's intended start (default: what each scenario says)")
    run.add_argument("--rate", type=float, metavar="R",
                     help="open model at R arrivals/s for every scenario's loads; a sweep starts at R")
    run.add_argument("--arrivals", choices=["fixed", "poisson"], default="fixed", help="open-model arrival spacing")
    run.add_argument("--knee-p99-ms", type=float,
                     help="a sweep's p99 bound: its knee is the highest rate held under it (default: the scenario's)")
    run.add_argument("--sweep-cap", type=float, metavar="SECONDS",
                     help="a sweep pass stops rising after this many seconds (default: the scenario's)")
    run.add_argument("--processes", type=int, default=1,
                     help="Locust worker processes per phase (its distributed mode; the rate is split across them)")
    run.add_argument("--no-fail", action="store_true",
                     help="exit 0 even when a claim fails, is unmeasured or invalid")
    bench = add("bench", cmd_bench, epilog="Targets come from the module's spec (hot_path): the fast path at "
                                           "least min_ratio x the floor's throughput, the load side at most "
                                           "max_load_ratio x bare Locust's CPU per request.")
    bench.add_argument("module")
    bench.add_argument("--duration", type=float, default=15.0, help="measured seconds per measurement (default 15)")
    bench.add_argument("--warmup", type=float, default=5.0, help="seconds before each window (default 5)")
    bench.add_argument("--connections", type=int, default=32, help="wrk's connections (default 32)")
    bench.add_argument("--users", type=int, default=32, help="Locust users on both load sides (default 32)")
    bench.add_argument("--repeat", type=int, default=3, help="alternations of each pair; medians (default 3)")
    bench.add_argument("--no-fail", action="store_true", help="exit 0 even when a target is missed or unmeasured")
    add("report", cmd_report).add_argument("run", help="run directory, module/run-id, run-id or latest")
    compare = add("compare", cmd_compare)
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--out", metavar="DIR", help="where compare.md, compare.html and the side-by-side "
                                                       "dashboards go (default: results/<module>/compare-A-vs-B)")
    add("list", cmd_list)
    add("generate", cmd_generate).add_argument("--check", action="store_true",
                                               help="change nothing; exit 1 naming the stale files")
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    locust_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.locust_args = locust_args
    from harness.bench import BenchError
    from harness.phase import PhaseFailed
    from harness.plan import PlanError
    from harness.prom import PrometheusError
    from harness.results import RunNotFound
    from harness.stack import StackError

    try:
        return args.func(args)
    except ValidationError as exc:
        for error in exc.errors():
            name = "HARNESS_" + "_".join(map(str, error["loc"])).upper()
            console.print(f"[red]error:[/] bad setting {name}: {error['msg']} (got {error.get('input')!r})")
        return 2
    except (UnknownModule, BadSpec, PlanError, RunNotFound) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except (StackError, PhaseFailed, PrometheusError, BenchError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 3
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; what was measured so far is in the run directory")
        return 130


if __name__ == "__main__":
    sys.exit(main())
