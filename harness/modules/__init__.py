"""Registry of the curriculum modules: every `harness/modules/<id>.py` that defines `SPEC`.

Adding a module adds a file here (and its target, locustfile, dashboard); no other core file changes.
One module id is spelled the same everywhere: `targets/<id>/`, `locustfiles/<id>.py`,
`dashboards/<id>.json`, `results/<id>/`, and the metric label `module="<id>"`.
Loading a spec imports pydantic and the spec's own file only, never Locust.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

from pydantic import ValidationError

from harness.settings import get_settings
from harness.spec import ModuleSpec


class UnknownModule(ValueError):
    pass


class BadSpec(ValueError):
    """A module's spec failed validation; the message names the module and the field."""


def load_spec(name: str) -> ModuleSpec:
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise BadSpec(f"module spec {name}: {problems}") from None
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, ModuleSpec):
        raise BadSpec(f"harness/modules/{name}.py defines no SPEC = ModuleSpec(...)")
    if spec.id != name:
        raise BadSpec(f"harness/modules/{name}.py declares id {spec.id!r}; the file name and the id must match")
    return spec


@cache
def modules() -> dict[str, ModuleSpec]:
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    return {name: load_spec(name) for name in names}


def get_module(module_id: str) -> ModuleSpec:
    try:
        return modules()[module_id]
    except KeyError:
        raise UnknownModule(f"unknown module {module_id!r}; known modules: {', '.join(modules())}") from None


def locustfile(spec: ModuleSpec) -> Path:
    return get_settings().project_dir / "locustfiles" / f"{spec.id}.py"


def dashboard(spec: ModuleSpec) -> Path:
    return get_settings().project_dir / "dashboards" / f"{spec.id}.json"


def url(spec: ModuleSpec) -> str:
    return get_settings().target_url(spec.id, spec.port)
