"""`targets.<id>:app` without importing the app until it is asked for.

A module's `targets/<id>/__init__.py` is

    from targets.lazy import app_attribute

    __getattr__ = app_attribute(__name__)

so `import targets.<id>.settings` (the harness's spec does it) loads no FastAPI and no store client,
while `targets.<id>:app` (uvicorn, the Dockerfile, compose, the stack) gets the app that
`targets/<id>/main.py` builds. The module is `main.py`, not `app.py`: importing a submodule binds its
name on the package, and uvicorn, which looks `app` up twice, would get the submodule the second time.
This file imports nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def app_attribute(package: str) -> Callable[[str], object]:
    """A module-level `__getattr__` (PEP 562) for `package` that resolves `app` from `<package>.main`."""

    def __getattr__(name: str) -> object:
        if name == "app":
            return importlib.import_module(f"{package}.main").app
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
