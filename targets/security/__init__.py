"""The realtime target: `targets.realtime:app`, built by `main.py` on first access (targets/lazy.py), so
importing `targets.realtime.settings` loads neither FastAPI nor the target's stores."""

from targets.lazy import app_attribute

__getattr__ = app_attribute(__name__)
