"""`pip install .` (not editable) must carry everything a run needs: the wheel holds the harness, the
module specs, the targets, the locustfiles and the dashboards with their provisioning files, beside
each other as in a checkout. Built from a copy of the tree, so the checkout gets no build/ or egg-info."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", ".harness", "results", "build", "*.egg-info", "__pycache__",
                              ".pytest_cache", ".ruff_cache", "tests", "docs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=SKIP)
    # --no-build-isolation: setuptools from this venv, so the test needs no index
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp / "dist"), str(tmp / "src")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = (tmp / "dist").glob("pattern_harness-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_carries_every_part_of_a_run(wheel):
    names = set(wheel.namelist())
    for path in ("harness/cli.py", "harness/modules/scaling_reads.py", "harness/loadgen/plugin.py",
                 "harness/loadgen/live_tab.html",
                 "harness/bench_bare.py", "locustfiles/scaling_reads.py", "targets/common.py",
                 "targets/scaling_reads/__init__.py", "targets/scaling_reads/main.py",
                 "dashboards/scaling_reads.json", "dashboards/prometheus/prometheus.yml",
                 "dashboards/grafana/datasources/prometheus.yml", "dashboards/grafana/dashboards/provider.yml"):
        assert path in names, f"{path} is not in the wheel"


def test_every_module_ships_its_target_locustfile_and_dashboard(wheel):
    from harness.modules import modules

    names = set(wheel.namelist())
    for module_id in modules():
        for path in (f"harness/modules/{module_id}.py", f"targets/{module_id}/__init__.py",
                     f"targets/{module_id}/main.py", f"targets/{module_id}/settings.py",
                     f"locustfiles/{module_id}.py", f"dashboards/{module_id}.json"):
            assert path in names, f"{path} is not in the wheel"


def test_the_wheel_declares_the_console_script_and_ships_no_tests(wheel):
    names = wheel.namelist()
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "harness = harness.cli:main" in wheel.read(entry_points).decode()
    assert not [n for n in names if n.startswith(("tests/", ".harness/", "results/"))]


def imported_packages(source: str) -> set[str]:
    """Top-level names of every absolute import, except optional ones (inside `try: ... except ImportError`)."""
    tree = ast.parse(source)
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            optional |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_imported_third_party_package_is_declared():
    """What harness/, targets/ and locustfiles/ import is a declared dependency (its distribution's name)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normal(re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    distributions = metadata.packages_distributions()
    imported = set()
    for folder in ("harness", "targets", "locustfiles"):
        for source in (ROOT / folder).rglob("*.py"):
            imported |= imported_packages(source.read_text())
    third_party = imported - {"harness", "targets", "locustfiles", "dashboards", "__future__"}
    third_party -= set(sys.stdlib_module_names)
    missing = {name: owners for name in sorted(third_party)
               if not (owners := {normal(d) for d in distributions.get(name, [name])}) & declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def normal(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()
