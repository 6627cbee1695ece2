"""The claims of a run as report.html shows them, to be read at a glance on a projector.

The verdict and the sentence first; then measured against the baseline in the metric's unit (its
name says which: `_ms`, `_s`, `_bytes`, `_per_<thing>`, see `presentation.humane`) and the ratio
against its threshold, with the comparison; how it is computed (expression, detail) folded under the
claim; the claims not run grouped apart, with the command that runs their scenarios. report.md keeps
the full table (harness/document.py's "view" block).
"""

from __future__ import annotations

import html
from collections.abc import Callable

from harness.presentation import fmt, humane, metric_format
from harness.record import Run

__all__ = ["claims_view"]


def _metric_of(claim) -> str:
    """The metric a claim reads, from its expression ("presigned cpu_s_per_mib <= 0.35 x proxy ...")."""
    words = claim.expression.split()
    return words[1] if len(words) > 1 else ""


def claims_view(run: Run, css_class: Callable[[str], str], demonstrations: bool = False) -> str:
    """The claims as a reader takes them in: the verdict and the sentence first, then measured against
    the baseline in the metric's unit and the ratio against its threshold; how it is computed folded;
    the claims not run grouped apart with the command that runs them."""
    esc = html.escape
    claims = [c for c in run.claims if bool(c.demonstration) == demonstrations]
    ran = [c for c in claims if c.status != "not run"]
    rows = []
    for c in ran:
        key = _metric_of(c)
        kind = metric_format(run, key)[1] if key else "num"
        label = metric_format(run, key)[0] if key else ""
        vs = humane(key, c.measured, kind) + (f" vs {humane(key, c.baseline, kind)}" if c.baseline is not None else "")
        words = c.expression.split()
        op = words[2] + " " if len(words) > 2 and words[2] in ("<=", ">=", "<", ">", "==") else ""
        ratio = f"{fmt(c.ratio, 'ratio')} (needs {op}{fmt(c.threshold)}x)" if c.ratio is not None and c.threshold \
            is not None else f"needs {op}{humane(key, c.threshold, kind)}" if c.threshold is not None else ""
        folded = "".join(f"<div>{esc(t)}</div>" for t in (c.expression, c.detail, c.demonstration) if t)
        rows.append(f'<tr><td class="{css_class(c.status)}">{esc(c.status)}</td>'
                    f'<td class="sentence">{esc(c.sentence or c.id)}<details><summary>{esc(c.id)} · '
                    f'{esc(c.scenario)}{" · " + esc(label) if label else ""}</summary>{folded}</details></td>'
                    f'<td class="n">{esc(vs)}</td><td class="n">{esc(ratio)}</td></tr>')
    out = ['<table class="claims"><thead><tr><th>verdict</th><th>claim</th><th>measured vs baseline</th>'
           '<th>ratio (threshold)</th></tr></thead><tbody>', *rows, "</tbody></table>"] if rows else []
    not_run = [c for c in claims if c.status == "not run"]
    if not_run:
        scenarios = list(dict.fromkeys(c.scenario for c in not_run if c.scenario))
        command = f"harness run {run.module} --scenarios {' '.join(scenarios)}" if scenarios else ""
        items = "".join(f"<li><b>{esc(c.id)}</b> ({esc(c.scenario)}): {esc(c.sentence)}</li>" for c in not_run)
        out.append(f'<details class="notrun"><summary>{len(not_run)} not run: their scenarios were not part of this '
                   f'run{"; run them with <code>" + esc(command) + "</code>" if command else ""}</summary>'
                   f"<ul>{items}</ul></details>")
    return "\n".join(out)
