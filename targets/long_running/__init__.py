"""The scaling_writes target: `targets.scaling_writes:app`, built by `main.py` on first access (targets/lazy.py), so
importing `targets.scaling_writes.settings` loads neither FastAPI nor the target's stores."""

from targets.lazy import app_attribute

__getattr__ = app_attribute(__name__)
