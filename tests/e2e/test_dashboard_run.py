"""A short real `harness run`: its report carries the module's dashboard, every panel drawn with data or
listed as empty with why; `harness report` redraws it from the run's folder with Prometheus out of reach,
and `harness compare` puts two runs' panels side by side. Nothing here names the module's panels: they
are read from the dashboard JSON, as the renderer reads them."""

import json
import os
import socket
import subprocess
import sys

import pytest

from harness import cli
from harness.grafana import iter_panels
from harness.modules import dashboard, get_module
from harness.settings import get_settings

pytestmark = pytest.mark.e2e
SPEC = get_module("scaling_reads")


def harness(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def short_run(stack, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = harness("run", SPEC.id, "--scenarios", SPEC.default_scenarios[0], "--variants", *SPEC.variant_names[:2],
                   "--duration", "3", "--warmup", "1", "--repeat", "1", "--users", "4", "--no-fail",
                   env={"HARNESS_RESULTS_DIR": str(results)}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (results / SPEC.id).iterdir()
    return results, run_dir


def dashboard_problems(run_dir) -> list[str]:
    """Every panel of the module's dashboard that the run's report neither drew with data nor listed as
    empty with a reason."""
    captured = json.loads((run_dir / "dashboard.json").read_text())
    assert not captured.get("error"), captured["error"]
    report = (run_dir / "report.md").read_text()
    section = report.split("## Dashboard", 1)[1].split("\n## ", 1)[0]
    problems = []
    for panel in (p for p in iter_panels(json.loads(dashboard(SPEC).read_text())["panels"]) if p["type"] != "row"):
        [stored] = [p for p in captured["panels"] if p["id"] == panel["id"]]
        has_data = any(s["values"] for t in stored["targets"] for s in t["series"])
        listed = f"| {panel['title']} | " in section
        if has_data == listed:
            problems.append(f"{panel['title']}: {'drawn and listed as empty' if listed else 'no data, not listed'}")
    return problems


def test_every_panel_is_drawn_with_data_or_listed_with_why(short_run):
    _, run_dir = short_run
    assert not dashboard_problems(run_dir)
    assert (run_dir / "plots" / "dashboard.png").stat().st_size > 50_000
    html = (run_dir / "report.html").read_text()
    assert '<img alt="dashboard.png" src="data:image/png;base64,' in html


def test_the_check_sees_a_panel_that_lost_its_data(short_run, tmp_path):
    """A panel whose series vanished but that the report does not list is caught."""
    _, run_dir = short_run
    broken = tmp_path / run_dir.name
    broken.mkdir()
    captured = json.loads((run_dir / "dashboard.json").read_text())
    first = next(p for p in captured["panels"] if p["type"] != "row" and p["targets"])
    for target in first["targets"]:
        target["series"] = []
    (broken / "dashboard.json").write_text(json.dumps(captured))
    (broken / "report.md").write_text((run_dir / "report.md").read_text())
    assert dashboard_problems(broken) == [f"{first['title']}: no data, not listed"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prometheus_gone(monkeypatch):
    """In this process, the settings point at a port where nothing listens."""
    monkeypatch.setenv("HARNESS_PROMETHEUS_PORT", str(closed_port()))
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_report_redraws_and_compare_sets_side_by_side_from_the_run_folders_alone(short_run, prometheus_gone,
                                                                                 tmp_path):
    _, run_dir = short_run
    drawn = (run_dir / "plots" / "dashboard.png").read_bytes()
    (run_dir / "plots" / "dashboard.png").unlink()
    assert cli.main(["report", str(run_dir)]) == 0
    assert (run_dir / "plots" / "dashboard.png").read_bytes() == drawn

    assert cli.main(["compare", str(run_dir), str(run_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "plots" / "dashboards.png").stat().st_size > 50_000
    html = (tmp_path / "compare.html").read_text()
    assert "Dashboards side by side" in html and 'src="data:image/png;base64,' in html
    assert html.index("claim ") < html.index("<td>rps</td>")  # the claims' ratios lead, the absolutes follow
