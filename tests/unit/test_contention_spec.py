"""The contention spec and the generic parts it added to the contract: line plots (a metric against a
per-scenario parameter) validated and drawn from run.json alone, and the module's default repetitions."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.modules import get_module
from harness.plots import write_plots
from harness.results import load_run
from harness.spec import LinePlot, ModuleSpec

SPEC = get_module("contention")
REFERENCE = Path(__file__).parents[2] / "results" / "reference" / "contention"


def test_line_plot_names_only_known_scenarios_and_metrics():
    broken = LinePlot(title="t", x_label="x", x=(("high", 1), ("nowhere", 2)), metrics=("rps", "no_such"))
    with pytest.raises(ValidationError) as error:
        ModuleSpec(**{**{name: getattr(SPEC, name) for name in ModuleSpec.model_fields}, "line_plots": (broken,)})
    assert "line_plots.x: unknown 'nowhere'" in str(error.value)
    assert "line_plots.metrics: unknown 'no_such'" in str(error.value)


def test_presentation_carries_the_line_plot_and_the_default_repeat_is_the_modules():
    plot = SPEC.presentation()["line_plots"][0]
    assert [g for g, _ in plot["x"]] == ["high", "seats_4", "seats_32", "low"]
    assert [m[0] for m in plot["metrics"]] == ["rps", "retries_per_success"]
    assert SPEC.repeat == 1 and get_module("scaling_reads").repeat == 2


def test_the_reference_run_draws_its_line_plot(tmp_path):
    (run_dir,) = sorted(REFERENCE.iterdir())[-1:]
    run = load_run(run_dir)
    written = {p.name for p in write_plots(run, tmp_path)}
    assert "lines_1.png" in written and (tmp_path / "lines_1.png").stat().st_size > 10_000
    del run.presentation["line_plots"]  # a run stored before line plots renders without one
    assert "lines_1.png" not in {p.name for p in write_plots(run, tmp_path / "old")}
