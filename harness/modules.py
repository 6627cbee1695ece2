"""Registry of the curriculum modules: where each one's target, locustfile and dashboard live.

One module id is spelled the same everywhere: `targets/<id>.py`, `locustfiles/<id>.py`,
`dashboards/<id>.json`, `results/<id>/`, and the metric label `module="<id>"`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from harness.settings import get_settings


class UnknownModule(ValueError):
    pass


@dataclass(frozen=True)
class Module:
    id: str
    title: str
    port: int
    services: tuple[str, ...]

    @property
    def target_app(self) -> str:
        return f"targets.{self.id}:app"

    @property
    def locustfile(self) -> Path:
        return get_settings().project_dir / "locustfiles" / f"{self.id}.py"

    @property
    def dashboard(self) -> Path:
        return get_settings().project_dir / "dashboards" / f"{self.id}.json"

    @property
    def url(self) -> str:
        return get_settings().target_url(self.port)

    def workload(self) -> ModuleType:
        """The locustfile as a module, for its VARIANTS, CLAIMS and SCENARIOS data."""
        return _load_locustfile(self.locustfile)


MODULES: dict[str, Module] = {
    m.id: m for m in (Module("scaling_reads", "Scaling Reads", port=18101, services=("postgres", "redis")),)
}


def get_module(module_id: str) -> Module:
    try:
        return MODULES[module_id]
    except KeyError:
        known = ", ".join(sorted(MODULES))
        raise UnknownModule(f"unknown module {module_id!r}; known modules: {known}") from None


@cache
def _load_locustfile(path: Path) -> ModuleType:
    # Importing locust monkey-patches the whole process for gevent; the harness only reads data here.
    # The variable must not leak into the Locust processes the harness starts later.
    previous = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    try:
        name = f"locustfiles.{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        if previous is None:
            del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
        else:
            os.environ["LOCUST_SKIP_MONKEY_PATCH"] = previous
