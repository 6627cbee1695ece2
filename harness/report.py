"""Render one run: Markdown and self-contained HTML reports with plots, and rich tables for the CLI.

Everything reads the run's typed record (harness/record.py), including how to show it (`run.presentation`, see
harness/presentation.py), so a stored run re-renders on its own. The report is built once as a list
of blocks (heading, verdict, paragraph, table, images, key/value list) and written out as both
Markdown and HTML, so the two always say the same thing. The plots are in harness/plots.py.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from rich.table import Table
from rich.text import Text

from harness import calibrate, censored, dashboard, noise
from harness.claims import FAILING
from harness.claims_view import claims_view
from harness.document import html_page, markdown, md_table
from harness.gate import budget_problem, fault_problems, tally
from harness.plots import write_plots
from harness.presentation import MISSING, fmt, metric_format, presentation, summary_of
from harness.record import Run

__all__ = ["compare_markdown", "compare_table", "fmt", "render", "summary_table", "verdict_table"]

STATUS_STYLE = {"held": "green", "failed": "red", "unmeasured": "red", "invalid": "red", "not run": "yellow",
                "violated": "red", "finding": "yellow",
                "pass": "green", "fail": "red", "skipped": "yellow"}  # the last three: runs before the gate
CURVE_HEADERS = ("variant", "target rate/s", "achieved rate/s", "p99 ms", "failed", "dropped", "held", "knee")
CLAIM_HEADERS = (
    "status", "id", "claim", "expression", "measured", "baseline", "ratio", "threshold", "detail")
DEMONSTRATION_HEADERS = (*CLAIM_HEADERS, "why a demonstration")
DEMONSTRATIONS = (
    "Each of these restates an invariant the run already enforces, or holds by construction of the variant: "
    "checked like a claim, but a held one is no evidence for the pattern, and the claims' count above leaves "
    "them out. A failed, unmeasured or invalid one still fails the run: it means the harness or the target is "
    "broken."
)
INVARIANT_HEADERS = ("status", "invariant", "scenario", "variant", "value", "expected", "detail")
PHASE_HEADERS = ("#", "group", "variant", "rep", "rate/s", "requests", "failed", "budget", "rps", "p95 ms",
                 "p99 ms", "failure reasons")
NOISE_HEADERS = ("#", "group", "variant", "rep", "load avg", "max load avg", "steal", "host busy CPU s", "run CPU s",
                 "kernel CPU s", "foreign CPU s", "foreign of capacity", "noisy")
NOISE_TEXT = (
    "Sampled from /proc over each phase's measured window (harness/noise.py): the 1-minute load average at "
    "the window's end and the highest seen in it, the share of the CPU time the hypervisor took (steal), and the "
    "CPU-seconds used by the whole host, by this run (the harness, Locust and the run's services), by kernel "
    "threads, and by every other process (foreign), the last also as a share of the machine's capacity (cores x "
    f"window). A phase whose foreign CPU exceeds {noise.FOREIGN_LIMIT:.0%} of capacity is flagged noisy; the flag "
    "does not change any verdict."
)
FAULT_HEADERS = ("phase", "service", "action", "planned at s", "began at s", "lasted s", "error")
HOW_TO_READ = (
    "Every ratio compares variants measured side by side in this one run, on this machine, with phases "
    "interleaved (A B A B) so drift hits every variant alike; warm-up is excluded. Values are medians over "
    "repetitions. Latencies and throughput are over successful responses only; failures are counted by reason "
    "beside them. Latencies are exact (HdrHistogram, not Locust's rounded buckets) and timed on the load "
    "side, so they include the network and the client. A claim is held or failed when its measured values "
    "decide it (a censored value such as a knee '< 150' decides it from its bound where the bound decides); "
    "unmeasured when its scenario ran but a value is missing, 0/0, or its bounds do not decide it; invalid when "
    "a phase it reads was over its error budget or its fault did not happen; not run when its scenario or a "
    "variant was not part of this run. Unmeasured, invalid and failed claims fail the run; an invariant a "
    "variant does not claim is reported as a finding and does not."
)
CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #d0d7de;padding:.25em .6em}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.held,.pass{color:#1a7f37;font-weight:600}.failed,.fail,.unmeasured,.invalid,.violated{color:#cf222e;font-weight:600}
.skipped,.finding{color:#9a6700}p.verdict{font-size:1.2em;padding:.4em .8em;border-radius:4px}
p.verdict.pass{background:#dafbe1}p.verdict.fail{background:#ffebe9}img{max-width:100%}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dt{font-weight:600}dd{margin:0}
table.claims{width:100%}table.claims td{vertical-align:top}td.sentence{min-width:30em}
details summary{cursor:pointer;color:#57606a;font-size:.85em}details div{font-size:.85em;color:#444}
details.notrun{margin:.5em 0 1.5em;padding:.4em .8em;background:#fff8c5;border-radius:4px}
details.notrun summary{color:#6e5600;font-size:1em}"""


def _passed(run: Run) -> bool:
    if run.passed is not None:
        return run.passed
    return all(c.status not in (*FAILING, "fail") for c in run.claims)


def _verdict_text(run: Run) -> str:
    return f"{'PASSED' if _passed(run) else 'FAILED'}: {tally(run)}"


# ---- tables as rows of strings, shared by Markdown, HTML and rich ----

def _claim_rows(run: Run, demonstrations: bool = False) -> list[list[str]]:
    """The claims' rows, or the demonstrations' (with why each is one) when `demonstrations`."""
    return [[c.status, c.id, c.sentence, c.expression, fmt(c.measured), fmt(c.baseline), fmt(c.ratio, "ratio"),
             fmt(c.threshold), c.detail or "", *([c.demonstration] if demonstrations else [])]
            for c in run.claims if bool(c.demonstration) == demonstrations]


def _invariant_rows(run: Run) -> list[list[str]]:
    return [[i.status, i.name, i.scenario or MISSING, i.variant or MISSING, fmt(i.value), i.expected, i.detail or ""]
            for i in run.invariants]


def _summary_rows(run: Run, group: str) -> tuple[list[str], list[list[str]]]:
    variants = summary_of(run).get(group) or {}
    columns = [(key, label, kind) for key, label, kind in presentation(run)["columns"]
               if any(metrics.get(key) is not None for metrics in variants.values())]
    rows = [[variant] + [fmt(metrics.get(key), kind) for key, _, kind in columns]
            for variant, metrics in variants.items()]
    return ["variant"] + [label for _, label, _ in columns], rows


def _reasons(errors: dict | None) -> str:
    return ", ".join(f"{reason} x{n:,}" for reason, n in sorted((errors or {}).items(), key=lambda e: -e[1]))


def _phase_rows(run: Run) -> list[list[str]]:
    rows = []
    for phase in run.phases:
        latency, budget = phase.latency_ms, phase.error_budget
        over = "OVER " if phase.over_budget and phase.step is None else ""
        rows.append([fmt(phase.index), phase.group_name, phase.variant, fmt(phase.repetition), fmt(phase.rate or None),
                     fmt(phase.requests), fmt(phase.failures),
                     f"{over}{fmt(phase.failure_ratio, 'percent')} of {fmt(budget, 'percent')}"
                     if budget is not None else MISSING,
                     fmt(phase.rps), fmt(latency.get("p95")), fmt(latency.get("p99")), _reasons(phase.errors)])
    return rows


def _fault_rows(run: Run) -> list[list[str]]:
    rows = []
    for phase in run.phases:
        for f in phase.faults:
            began = f.begin - phase.measured_start if f.begin and phase.measured_start else None
            lasted = f.end - f.begin if f.begin and f.end else None
            rows.append([fmt(phase.index), f.service, f.action, fmt(f.planned_at_s), fmt(began), fmt(lasted),
                         f.error or ""])
    return rows


def _noise_rows(run: Run) -> list[list[str]]:
    rows = []
    for phase in run.phases:
        n = phase.noise
        values = [MISSING] * 8 if n is None else [
            fmt(n.load1), fmt(n.load1_max), fmt(n.steal_share, "percent"), fmt(n.busy_cpu_s), fmt(n.run_cpu_s),
            fmt(n.kernel_cpu_s), fmt(n.foreign_cpu_s), fmt(n.foreign_share, "percent")]
        rows.append([fmt(phase.index), phase.group_name, phase.variant, fmt(phase.repetition), *values,
                     "NOISY" if noise.noisy(n) else ""])
    return rows


def _noise_blocks(run: Run) -> tuple[list[tuple], list[tuple]]:
    """The flag near the top (phases over the foreign CPU limit) and the per-phase table; both empty
    for a run made before noise was sampled."""
    if not any(p.noise for p in run.phases):
        return [], []
    flagged = [f"phase {p.index} ({p.group_name}/{p.variant}): foreign CPU {fmt(p.noise.foreign_share, 'percent')} "
               f"of capacity ({fmt(p.noise.foreign_cpu_s)} CPU-s), load average {fmt(p.noise.load1)}"
               for p in run.phases if noise.noisy(p.noise)]
    unowned = [p for p in run.phases if p.noise and p.noise.unowned]
    top = [("h", 2, "Phases measured on a noisy host"),
           ("p", f"Processes outside this run used more than {noise.FOREIGN_LIMIT:.0%} of the machine's CPU capacity "
                 "during these phases, so their numbers may be worse than this machine gives a quiet run: "
                 + "; ".join(flagged) + ". This flags; it changes no verdict.")] if flagged else []
    table = [("h", 2, "Host noise"), ("p", NOISE_TEXT), ("table", list(NOISE_HEADERS), _noise_rows(run))]
    if unowned:
        names = ", ".join(sorted({s for p in unowned for s in p.noise.unowned}))
        which = f"Phase{'s' if len(unowned) > 1 else ''} {', '.join(str(p.index) for p in unowned)}"
        table.append(("p", f"{which} used services the harness did not start ({names}): their CPU counts as "
                           "foreign and cannot be told from other load, so "
                           f"{'they are' if len(unowned) > 1 else 'it is'} not flagged."))
    return top, table


def _gate_problems(run: Run) -> list[str]:
    phases = run.phases
    over = [p for p in phases if p.step is None and budget_problem(p)]
    return [budget_problem(p) for p in over] + [x for p in phases for x in fault_problems(p)]


def _knee_mark(rate: float, knee) -> str:
    """Where a point stands to its variant's knee: the knee, or the end of a censored one."""
    if not isinstance(knee, dict):
        return "knee" if rate == knee else ""
    marks = {"ge": "held every rate tried", "lt": "broke at the first rate"}
    return marks.get(knee.get("censor"), "") if rate == knee.get("value") else ""


def _curve_rows(curve: dict) -> list[list[str]]:
    return [[variant, fmt(p["rate"]), fmt(p["achieved"]), fmt(p["p99_ms"]), fmt(p.get("failure_ratio"), "percent"),
             fmt(p["dropped"]), f"{p.get('held', MISSING)}/{p.get('runs', MISSING)}",
             _knee_mark(p["rate"], data["knee_rate"])]
            for variant, data in curve["variants"].items() for p in data["points"]]


def _number(value) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _change(a, b) -> float | None:
    a, b = _number(a), _number(b)
    return None if a is None or b is None or a == 0 else (b - a) / a * 100


def _claim_cell(claim) -> str:
    if claim is None:
        return MISSING
    return f"{claim.status} {fmt(claim.ratio, 'ratio')}" if claim.ratio is not None else claim.status


def _calibration(run: Run) -> float | None:
    value = (run.environment.model_extra or {}).get("calibration_ops_s")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _compare(a: Run, b: Run) -> tuple[list[str], list[list[str]]]:
    """The claims first, each run's verdict with its ratio: a ratio compares variants measured side by side
    on one machine, so it carries over between machines; then the absolutes, which do not. When both runs
    recorded a calibration figure, a last column gives a rate's or a time's B/A as if B had run on A's
    machine (harness/calibrate.py)."""
    cal_a, cal_b = _calibration(a), _calibration(b)
    calibrated = cal_a is not None and cal_b is not None
    headers = ["scenario", "variant", "metric", f"A {a.run_id}", f"B {b.run_id}", "B/A",
               *(["B/A on A's machine"] if calibrated else [])]
    rows = []
    claims_a, claims_b = {c.id: c for c in a.claims}, {c.id: c for c in b.claims}
    for cid in dict.fromkeys([*claims_a, *claims_b]):
        ca, cb = claims_a.get(cid), claims_b.get(cid)
        scenario = (ca or cb).scenario or ""
        kind = "demonstration" if (ca or cb).demonstration else "claim"
        moved = "changed" if (ca and ca.status) != (cb and cb.status) else \
            fmt(_change(ca.ratio, cb.ratio), "change") if ca and cb and _number(ca.ratio) and _number(cb.ratio) else ""
        rows.append([scenario, "", f"{kind} {cid}", _claim_cell(ca), _claim_cell(cb), moved,
                     *([""] if calibrated else [])])
    for group, variants in summary_of(a).items():
        for variant, ma in variants.items():
            mb = (summary_of(b).get(group) or {}).get(variant)
            for key in dict.fromkeys([*presentation(a)["compare"], *presentation(b)["compare"]]):
                if mb is not None and ma.has(key) and mb.has(key) and (ma.get(key) is not None
                                                                        or mb.get(key) is not None):
                    kind = metric_format(a, key)[1]
                    row = [group, variant, key, fmt(ma.get(key), kind), fmt(mb.get(key), kind),
                           fmt(_change(ma.get(key), mb.get(key)), "change")]
                    if calibrated:
                        same = calibrate.normalised_change(key, _number(ma.get(key)), _number(mb.get(key)), cal_a,
                                                           cal_b)
                        row.append(fmt(None if same is None else (same - 1) * 100, "change"))
                    rows.append(row)
    return headers, rows


def machines_note(a: Run, b: Run) -> str:
    """Whether the two runs' absolutes can be compared at all: the machines they ran on."""
    def machine(run: Run) -> str:
        env = run.environment
        return f"{env.cpu_model or 'an unknown CPU'} ({env.cpu_count or '?'} cores)"

    same = machine(a) == machine(b)
    where = f"both on {machine(a)}" if same else f"A on {machine(a)}, B on {machine(b)}"
    cal_a, cal_b = _calibration(a), _calibration(b)
    yardstick = (f" Calibration (a fixed piece of Python, iterations/s, measured before each run): A {cal_a:,.0f}, "
                 f"B {cal_b:,.0f}, B/A {cal_b / cal_a:.2f}; the last column divides a rate's change by it and "
                 "multiplies a time's, as if B had run on A's machine." if cal_a and cal_b else
                 " One of the runs recorded no calibration figure, so the absolutes are not normalised.")
    return (f"Claims first: each ratio compares variants measured side by side within one run, so it carries over "
            f"between machines. The absolutes after them (requests/s, latencies) are machine-bound: {where}"
            + ("; a change in them may be the machine, not the code." if not same else
               "; their change is still subject to the host's noise (see each report's host noise table).")
            + yardstick)


# ---- rich ----

def _is_number(cell: str) -> bool:
    return cell == MISSING or re.fullmatch(r"(<=?|>=?)?\s?[-+]?[\d,.]+(e[-+]\d+)?[x%]?", cell) is not None


def _html_class(cell: str) -> str:
    return cell if cell in STATUS_STYLE else "n" if _is_number(cell) else ""


def _rich_table(title: str, headers, rows, text_columns: int) -> Table:
    """The first text_columns are text; the rest are numbers, right-aligned."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < text_columns else "right")
    for row in rows:
        table.add_row(*(Text(cell, style=STATUS_STYLE.get(cell, "")) for cell in row))
    return table


def verdict_table(run: Run, demonstrations: bool = False) -> Table:
    """The claims with their verdicts: status, id, expression, measured, baseline, ratio, threshold, detail;
    with `demonstrations`, the demonstrations instead (no evidence, counted apart)."""
    rows = [[r[0], r[1], *r[3:8], r[8] if r[0] in (*FAILING, "not run") else ""]
            for r in _claim_rows(run, demonstrations)]
    headers = [h for h in CLAIM_HEADERS if h != "claim"]
    title = f"{run.name}: demonstrations (no evidence; a failed one fails the run)" if demonstrations else \
        f"{run.name}: {_verdict_text(run)}"
    return _rich_table(title, headers, rows, 3)


def summary_table(run: Run, group: str | None = None) -> Table:
    """Per-variant medians of one group, with only the metrics this run measured."""
    group = group or next(iter(summary_of(run)), "")
    return _rich_table(f"{run.name}: {group}", *_summary_rows(run, group), 1)


def compare_table(a: Run, b: Run) -> Table:
    """Two runs side by side: shared metrics with the B/A change, then every claim's status in each."""
    return _rich_table(f"A {a.run_id} vs B {b.run_id}", *_compare(a, b), 3)


def compare_markdown(a: Run, b: Run) -> str:
    """compare_table as Markdown."""
    heading = f"## {a.module}: A {a.run_id} vs B {b.run_id}"
    return f"{heading}\n\n{machines_note(a, b)}\n\n{md_table(*_compare(a, b))}\n"


def compare_page(a: Run, b: Run, out_dir: Path, dashboards: Path | None) -> list[Path]:
    """compare.md and compare.html in out_dir: the note, the table, and both dashboards side by side."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = [("h", 1, f"{a.module}: A {a.run_id} vs B {b.run_id}"), ("p", machines_note(a, b)),
              ("table", *_compare(a, b))]
    images = {}
    if dashboards is not None:
        blocks += [("h", 2, "Dashboards side by side"),
                   ("p", "Every panel of the module's dashboard, A left and B right on the same scale, each over its "
                         "own run's window (seconds since that window's start)."), ("images", [dashboards.name])]
        images[dashboards.name] = base64.b64encode(dashboards.read_bytes()).decode("ascii")
    md_path, page = out_dir / "compare.md", out_dir / "compare.html"
    md_path.write_text(markdown(blocks), encoding="utf-8")
    page.write_text(html_page(blocks, images, CSS, _html_class), encoding="utf-8")
    return [md_path, page]


# ---- the document, as Markdown and HTML ----

def _document(run: Run, plot_names: list[str], dashboard_blocks: list[tuple] = ()) -> list[tuple]:
    def table(headers, rows):
        return [("table", list(headers), rows)] if rows else [("p", "None recorded.")]

    title = f"{run.name}: run {run.run_id}"
    info = (f"Module {run.module}, started {run.created or MISSING}, finished {run.finished or MISSING}, took "
            f"{fmt(run.duration_s)} s.")
    blocks = [("h", 1, title), ("verdict", _passed(run), _verdict_text(run)), ("p", info)]
    if run.error:
        blocks.append(("p", f"The run stopped early: {run.error}"))
    claims = _claim_rows(run)
    blocks += [("h", 2, "Claims"), ("view", list(CLAIM_HEADERS), claims, claims_view(run, _html_class)) if claims else
               ("p", "None recorded.")]
    if demonstrations := _claim_rows(run, demonstrations=True):
        blocks += [("h", 2, "Demonstrations"), ("p", DEMONSTRATIONS),
                   ("view", list(DEMONSTRATION_HEADERS), demonstrations,
                    claims_view(run, _html_class, demonstrations=True))]
    if problems := _gate_problems(run):
        blocks += [("h", 2, "Phases the claims cannot trust"),
                   ("p", "Claims reading these phases are invalid: " + "; ".join(problems) + ".")]
    noise_top, noise_table = _noise_blocks(run)
    blocks += noise_top
    blocks += [("h", 2, "Invariants"), *table(INVARIANT_HEADERS, _invariant_rows(run))]
    for group in summary_of(run):
        blocks += [("h", 2, f"Summary: {group}"), *table(*_summary_rows(run, group))]
    for group, curve in run.curves.items():
        knees = ", ".join(f"{v} {censored.describe(d['knee_rate'], fmt)}/s" for v, d in curve["variants"].items())
        blocks += [("h", 2, f"Latency vs throughput: {group}"),
                   ("p", f"Open model, rates rising per variant until one breaks. A variant's knee is the highest "
                         f"rate at which its p99 stays under {fmt(curve['bound_ms'])} ms, nothing is dropped, the "
                         f"achieved rate is within 5% of the target and failures stay within the error budget; "
                         f"'<' means it held no rate tried, '>=' that it held every rate tried (median over "
                         f"repetitions). Knees: {knees}."),
                   *table(CURVE_HEADERS, _curve_rows(curve))]
    if faults := _fault_rows(run):
        blocks += [("h", 2, "Faults"), ("p", "Seconds from each phase's measured start; shaded red in the plots."),
                   *table(FAULT_HEADERS, faults)]
    blocks += [("h", 2, "Phases"), *table(PHASE_HEADERS, _phase_rows(run))]
    blocks += noise_table
    blocks += [("h", 2, "Plots"), ("images", plot_names)]
    blocks += dashboard_blocks
    for heading, values in (("Parameters", run.parameters), ("Environment", run.environment.dump())):
        blocks += [("h", 2, heading), ("kv", [(k, fmt(v)) for k, v in values.items()])]
    return blocks + [("h", 2, "How to read this"), ("p", HOW_TO_READ)]


def render(run: Run, run_dir: Path) -> list[Path]:
    """Write plots/*.png, report.md and report.html into run_dir; return the paths written."""
    run_dir = Path(run_dir)
    plots = write_plots(run, run_dir / "plots")
    captured = dashboard.load(run_dir)
    drawn = [dashboard.write_png(captured, run_dir / "plots" / "dashboard.png", f"{run.name}: run {run.run_id}")] \
        if captured and not captured.get("error") else []
    blocks = _document(run, [p.name for p in plots], dashboard.blocks(run_dir, "dashboard.png" if drawn else None))
    plots += drawn
    md_path, page = run_dir / "report.md", run_dir / "report.html"
    md_path.write_text(markdown(blocks), encoding="utf-8")
    images = {p.name: base64.b64encode(p.read_bytes()).decode("ascii") for p in plots}
    page.write_text(html_page(blocks, images, CSS, _html_class), encoding="utf-8")
    return [*plots, md_path, page]
