"""The scaling_writes target: `targets.scaling_writes:app` for uvicorn, the Dockerfile and the stack.

`app` is built on first access (PEP 562), so importing `targets.scaling_writes.settings` (the harness's spec
does) imports neither FastAPI nor the target's stores. The app is built in `main.py` (not `app.py`:
importing a submodule named `app` would bind the package's `app` to that submodule); tests build
their own with `targets.scaling_writes.main.build`.
"""


def __getattr__(name: str):
    if name == "app":
        from targets.scaling_writes.main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
