"""The large_blobs target: `targets.large_blobs:app` for uvicorn, the Dockerfile and the stack.

`app` is built on first access (PEP 562), so importing `targets.large_blobs.settings` (the harness's spec
does) imports neither FastAPI nor the target's stores. The app is built in `main.py` (not `app.py`:
importing a submodule named `app` would bind the package's `app` to that submodule); tests build
their own with `targets.large_blobs.main.build`.
"""


def __getattr__(name: str):
    if name == "app":
        from targets.large_blobs.main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
