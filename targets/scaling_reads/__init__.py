"""The scaling_reads target: `targets.scaling_reads:app`, built by `main.py` on first access (targets/lazy.py), so
importing `targets.scaling_reads.settings` loads neither FastAPI nor the target's stores."""

from targets.lazy import app_attribute

__getattr__ = app_attribute(__name__)
