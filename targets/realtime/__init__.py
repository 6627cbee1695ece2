"""The realtime target: `targets.realtime:app` for uvicorn, the Dockerfile and the stack.

`app` is built on first access (PEP 562), so importing `targets.realtime.settings` (the harness's spec
does) imports neither FastAPI nor the target's stores. Tests build their own app with `.app.build`.
"""


def __getattr__(name: str):
    if name == "app":
        from targets.realtime.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
