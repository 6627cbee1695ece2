"""Each module's target is a package, `targets/<id>/`, that owns its settings: one class, in
`targets/<id>/settings.py`, read by the spec, the target and its side processes. Checked for every
registered module; the imports run in a fresh interpreter, so what one module loads cannot hide behind
another's."""

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.modules import modules
from targets.resources import advisory_lock_id

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(modules())
HEAVY = ("fastapi", "starlette", "psycopg", "psycopg_pool", "redis", "prometheus_client", "aiokafka", "boto3")

PROBE = """
import importlib, json, sys
module_id = sys.argv[1]
importlib.import_module(f"targets.{module_id}.settings")
after_settings = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY or
                        name == f"targets.{module_id}.main")
package = importlib.import_module(f"targets.{module_id}")
app = getattr(package, "app")
assert getattr(package, "app") is app, "a second look-up (uvicorn makes one) found another object"
print(json.dumps({"after_settings": after_settings, "app": type(app).__name__,
                  "psycopg": "psycopg" in sys.modules}))
"""


def probe(module_id: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE.replace("HEAVY", repr(HEAVY)), module_id], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module_id", SPECS)
def test_the_spec_reads_the_settings_class_its_target_declares(module_id):
    spec = modules()[module_id]
    declared = importlib.import_module(f"targets.{module_id}.settings").Settings
    assert spec.settings is declared, f"{module_id}: SPEC.settings must be targets.{module_id}.settings.Settings"
    assert declared.model_config["env_prefix"] == spec.env_prefix


@pytest.mark.parametrize("module_id", SPECS)
def test_settings_are_declared_once_in_the_package(module_id):
    """No other file of the package declares a settings class on the module's prefix (a second copy)."""
    prefix = modules()[module_id].env_prefix
    for path in sorted((ROOT / "targets" / module_id).glob("*.py")):
        if path.name != "settings.py":
            assert f'env_prefix="{prefix}"' not in path.read_text(), (
                f"{path.relative_to(ROOT)} declares {prefix}* again: read targets/{module_id}/settings.py's Settings")


@pytest.mark.parametrize("module_id", SPECS)
def test_importing_the_settings_loads_no_target_and_the_app_resolves_lazily(module_id):
    spec = modules()[module_id]
    seen = probe(module_id)
    assert seen["after_settings"] == [], f"targets.{module_id}.settings imported {seen['after_settings']}"
    assert seen["app"] == "FastAPI", f"targets.{module_id}:app is a {seen['app']}"
    if "postgres" not in spec.services:
        assert not seen["psycopg"], f"{module_id} has no PostgreSQL, yet building its app imported psycopg"


def test_a_target_without_postgres_exists_to_check_the_psycopg_rule():
    assert any("postgres" not in spec.services for spec in modules().values())


@pytest.mark.parametrize("process", [(m, p) for m in SPECS for p in modules()[m].processes],
                         ids=lambda mp: mp[1].name)
def test_every_side_process_reads_its_modules_settings_and_port(process):
    module_id, proc = process
    assert proc.app.startswith(f"targets.{module_id}."), f"{proc.name} must live in targets/{module_id}/"
    source = importlib.import_module(proc.app)
    settings = importlib.import_module(f"targets.{module_id}.settings")
    assert source.Settings is settings.Settings, f"{proc.app} must read targets.{module_id}.settings.Settings"
    # Its port is the spec's: no second literal default for HARNESS_PROCESS_PORT in the process.
    text = Path(source.__file__).read_text()
    assert not re.search(r"HARNESS_PROCESS_PORT\"\s*,\s*\"?\d", text), f"{proc.app} has its own port default"
    if proc.port is not None:
        assert proc.port in vars(settings).values(), f"{proc.name}'s port is not declared in its settings.py"


def test_advisory_lock_ids_are_stable_64_bit_and_distinct_across_modules():
    assert advisory_lock_id("scaling_reads", "seed") == advisory_lock_id("scaling_reads", "seed")
    assert advisory_lock_id("scaling_reads", "seed") == -8630079180123959425  # the same in every process
    ids = {(m, purpose): advisory_lock_id(m, purpose) for m in SPECS for purpose in ("seed", "schema", "writer")}
    assert len(set(ids.values())) == len(ids)
    assert all(-(2**63) <= lock < 2**63 for lock in ids.values())


def test_no_target_takes_an_advisory_lock_by_a_literal_id():
    literal = re.compile(r"pg_advisory_(?:xact_)?(?:un)?lock\(\s*\d")
    for path in sorted((ROOT / "targets").rglob("*.py")):
        assert not literal.search(path.read_text()), f"{path.relative_to(ROOT)}: use targets.resources.advisory_lock"


def test_common_defines_no_module_metric_and_imports_no_store_client():
    tree = ast.parse((ROOT / "targets" / "common.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.col_offset == 0}
    assert not imported & {"psycopg", "psycopg_pool", "redis", "aiokafka", "boto3"}, imported
    common = (ROOT / "targets" / "common.py").read_text()
    names = re.findall(r"(?:Counter|Histogram|Gauge)\(\"(harness_[a-z_]+)\"", common)
    assert set(names) == {"harness_http_request_duration_seconds", "harness_http_responses"}, names
