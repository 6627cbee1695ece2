"""The multi_step target: `targets.multi_step:app`, built by `main.py` on first access (targets/lazy.py), so
importing `targets.multi_step.settings` loads neither FastAPI nor the target's stores."""

from targets.lazy import app_attribute

__getattr__ = app_attribute(__name__)
