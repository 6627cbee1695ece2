"""Registry of the curriculum modules: every `harness/modules/<id>.py` that defines `SPEC`.

Adding a module adds a file here (and its target, locustfile, dashboard); no other core file changes.
One module id is spelled the same everywhere: `targets/<id>/`, `locustfiles/<id>.py`,
`dashboards/<id>.json`, `results/<id>/`, and the metric label `module="<id>"`.
Loading a spec imports pydantic and the spec's own file only, never Locust. Specs load lazily, one
when it is asked for: listing the modules reads file names, so a broken spec breaks only the commands
that need that module (`harness down` and `status` need none).
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


def module_names() -> list[str]:
    """Every module id, from the file names alone: listing them imports no spec."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def load_spec(name: str) -> ModuleSpec:
    """Import one spec and check it; any failure is a BadSpec that names the module (and the field)."""
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise BadSpec(f"module spec {name}: {problems}") from None
    except Exception as exc:  # a syntax error, a bad import: the same one-line answer, naming the file
        raise BadSpec(f"harness/modules/{name}.py does not load: {type(exc).__name__}: {exc}") from None
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, ModuleSpec):
        raise BadSpec(f"harness/modules/{name}.py defines no SPEC = ModuleSpec(...)")
    if spec.id != name:
        raise BadSpec(f"harness/modules/{name}.py declares id {spec.id!r}; the file name and the id must match")
    return spec


def get_module(module_id: str) -> ModuleSpec:
    """One module's spec, loaded when first asked for; a broken one raises its BadSpec here, not elsewhere."""
    if module_id not in module_names():
        raise UnknownModule(f"unknown module {module_id!r}; known modules: {', '.join(module_names())}")
    return _loaded(module_id)


@cache
def _loaded(module_id: str) -> ModuleSpec:
    return load_spec(module_id)


def modules() -> dict[str, ModuleSpec]:
    """Every module's spec; the first broken one raises. For commands that need them all."""
    return {name: get_module(name) for name in module_names()}


def loadable() -> tuple[dict[str, ModuleSpec], dict[str, BadSpec]]:
    """The specs that load, and the error of each one that does not: for listing, and for what every
    module shares (the scrape config), so one broken spec breaks only the commands that need it."""
    specs, broken = {}, {}
    for name in module_names():
        try:
            specs[name] = get_module(name)
        except BadSpec as exc:
            broken[name] = exc
    return specs, broken


def locustfile(spec: ModuleSpec) -> Path:
    return get_settings().project_dir / "locustfiles" / f"{spec.id}.py"


def dashboard(spec: ModuleSpec) -> Path:
    return get_settings().project_dir / "dashboards" / f"{spec.id}.json"


def url(spec: ModuleSpec) -> str:
    return get_settings().target_url(spec.id, spec.port)
