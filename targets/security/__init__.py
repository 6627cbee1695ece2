"""The security target: `targets.security:app`, built by `main.py` on first access (targets/lazy.py), so
importing `targets.security.settings` loads neither FastAPI, PyJWT nor the limiters."""

from targets.lazy import app_attribute

__getattr__ = app_attribute(__name__)
