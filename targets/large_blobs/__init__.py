"""The large_blobs target: `targets.large_blobs:app`, built by `main.py` on first access (targets/lazy.py), so
importing `targets.large_blobs.settings` loads neither FastAPI nor the target's stores."""

from targets.lazy import app_attribute

__getattr__ = app_attribute(__name__)
