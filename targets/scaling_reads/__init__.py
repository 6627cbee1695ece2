"""The scaling_reads target: `targets.scaling_reads:app` for uvicorn, the Dockerfile and the stack.

`app` is built on first access (PEP 562), so importing `targets.scaling_reads.settings` (the harness's spec
does) imports neither FastAPI nor the target's stores. Once built, the package's `app` is the ASGI
app, not the submodule `app.py` (import from `targets.scaling_reads.app`: tests build their own with its `build`).
"""


def __getattr__(name: str):
    if name == "app":
        from targets.scaling_reads.app import app

        globals()["app"] = app  # importing the submodule bound its name here: the app takes it back
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
