"""The `harness` command: a thin layer over stack, run, results and report.

Exit codes: 0 ok; 1 a claim or invariant failed; 2 bad input (arguments, env settings); 3 a service
or the load generator failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.modules import MODULES, UnknownModule, get_module
from harness.settings import get_settings

# Piped output (CI logs, `| tee`) would otherwise wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


def cmd_up(args) -> int:
    """Start the embedded stack (PostgreSQL, Redis, Prometheus, targets) on loopback."""
    from harness.stack import Stack, services_for

    modules = [get_module(m) for m in args.modules] or list(MODULES.values())
    names = list(dict.fromkeys(n for m in modules for n in services_for(m)))
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

    def run_started(self, run_dir: Path, phases) -> None:
        console.print(f"run [bold]{run_dir.name}[/]: {len(phases)} phases, writing {run_dir}")
        self.bar.start()
        self.task = self.bar.add_task("starting", total=sum(p.duration_s + p.warmup_s + 4 for p in phases))

    def phase_started(self, spec) -> None:
        self.bar.update(self.task, description=f"phase {spec.index} {spec.scenario}/{spec.variant} "
                                               f"rep {spec.repetition} ({spec.users} users)")

    def tick(self) -> None:
        self.bar.advance(self.task, 0.25)

    def phase_done(self, record: dict) -> None:
        latency = record["latency_ms"]
        server = record["server"]
        hit = f" hit {server['hit_ratio']:.1%}" if server.get("hit_ratio") is not None else ""
        dropped = f" rate {record['rate']:g}/s dropped {record['dropped']}" if record.get("model") == "open" else ""
        self.bar.console.print(
            f"  {record['index']:>2} {record['group'] or record['scenario']:<11} {record['variant']:<26} "
            f"{(record['rps'] or 0):>8.0f} req/s  p50 {latency['p50'] or 0:7.2f} ms  p99 {latency['p99'] or 0:7.2f}"
            f" ms  fail {record['failures']}{hit}{dropped}")

    def stop(self) -> None:
        self.bar.stop()


def cmd_run(args) -> int:
    """Run a module's variants side by side, check its claims, write results and a report."""
    from harness.plan import make_plan
    from harness.run import execute

    plan = make_plan(get_module(args.module), args.variants, args.scenarios, profile=args.profile,
                     users=args.users, duration_s=args.duration, warmup_s=args.warmup, repeat=args.repeat,
                     model=args.model, rates=args.rate or [], arrivals=args.arrivals, knee_p99_ms=args.knee_p99_ms,
                     processes=args.processes,
                     locust_args=args.locust_args)
    progress = RichProgress()
    try:
        run, run_dir = execute(plan, get_settings(), progress)
    finally:
        progress.stop()
    _print_run(run, run_dir)
    console.print("the stack keeps running for the next run; `harness down` stops it")
    return 0 if run["passed"] or args.no_fail else 1


def _print_run(run: dict, run_dir: Path) -> None:
    from harness import report

    for scenario in run["summary"]:
        console.print(report.summary_table(run, scenario))
    console.print(report.verdict_table(run))
    for inv in run["invariants"]:
        mark = "[green]ok[/]" if inv["passed"] else "[red]VIOLATED[/]"
        console.print(f"invariant {inv['name']} {inv['scenario']}/{inv['variant']}: {inv['value']} "
                      f"(expected {inv['expected']}) {mark}")
    verdict = "[bold green]PASSED[/]" if run["passed"] else "[bold red]FAILED[/]"
    console.print(f"{verdict}  report: {run_dir / 'report.html'}  ({run_dir / 'report.md'})")


def cmd_report(args) -> int:
    """Render report.md, report.html and plots again from a run's run.json."""
    from harness import report
    from harness.results import find_run, load_run

    run_dir = find_run(args.run, get_settings().results_dir)
    run = load_run(run_dir)
    for path in report.render(run, run_dir):
        console.print(f"wrote {path}")
    return 0


def cmd_compare(args) -> int:
    """Put two runs side by side: every summary metric, its change, and each claim's verdicts."""
    from harness import report
    from harness.results import find_run, load_run

    settings = get_settings()
    a, b = (load_run(find_run(ref, settings.results_dir)) for ref in (args.run_a, args.run_b))
    console.print(report.compare_table(a, b))
    return 0


def cmd_list(args) -> int:
    """List modules with their variants, scenarios and claims."""
    for module in MODULES.values():
        workload = module.workload()
        console.print(f"[bold]{module.id}[/] ({module.title}), target port {module.port}")
        for name, description in workload.VARIANTS.items():
            console.print(f"  variant  {name:<26} {description}")
        for name, config in workload.SCENARIOS.items():
            console.print(f"  scenario {name:<26} variants: {', '.join(config['variants'])}")
        for claim in workload.CLAIMS:
            console.print(f"  claim    {claim.id:<26} [{claim.scenario}] {claim.expression}")
            console.print(f"           {'':<26} {claim.sentence}")
    return 0


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
    run.add_argument("--users", type=int, default=32,
                     help="users per phase: the closed model's load, the open model's pool (default 32)")
    run.add_argument("--duration", type=float, default=20, help="measured seconds per phase (default 20)")
    run.add_argument("--warmup", type=float, default=5, help="seconds left out at each phase's start")
    run.add_argument("--repeat", type=int, default=2, help="repetitions of each variant, interleaved")
    run.add_argument("--model", choices=["closed", "open"],
                     help="closed: users with no think time (max throughput); open: fixed arrival rate, latency "
                          "from each arrival's intended start (default: what each scenario says, else closed)")
    run.add_argument("--rate", type=float, nargs="+", metavar="R",
                     help="open model: arrivals/s; several rates make a sweep with latency-vs-throughput curves")
    run.add_argument("--arrivals", choices=["fixed", "poisson"], default="fixed", help="open-model arrival spacing")
    run.add_argument("--knee-p99-ms", type=float, default=100.0,
                     help="a sweep's knee: the highest rate whose p99 stays under this (default 100 ms)")
    run.add_argument("--processes", type=int, default=1,
                     help="Locust worker processes per phase (its distributed mode; the rate is split across them)")
    run.add_argument("--no-fail", action="store_true", help="exit 0 even when a claim fails")
    add("report", cmd_report).add_argument("run", help="run directory, module/run-id, run-id or latest")
    compare = add("compare", cmd_compare)
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    add("list", cmd_list)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    locust_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.locust_args = locust_args
    from harness.plan import PlanError
    from harness.prom import PrometheusError
    from harness.results import RunNotFound
    from harness.run import PhaseFailed
    from harness.stack import StackError

    try:
        return args.func(args)
    except ValidationError as exc:
        for error in exc.errors():
            name = "HARNESS_" + "_".join(map(str, error["loc"])).upper()
            console.print(f"[red]error:[/] bad setting {name}: {error['msg']} (got {error.get('input')!r})")
        return 2
    except (UnknownModule, PlanError, RunNotFound) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except (StackError, PhaseFailed, PrometheusError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 3
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; what was measured so far is in the run directory")
        return 130


if __name__ == "__main__":
    sys.exit(main())
