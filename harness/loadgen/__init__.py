"""Locust extensions shared by every locustfile: exact latencies, load-side metrics, the shape.

Importing locust patches the whole process for gevent, so the pure parts (`recorder`, `zipf`) import
without it and the Locust-facing names load on first use.
"""

from __future__ import annotations

__all__ = ["Paced", "Plugin", "ProfileShape", "invariant", "setup", "tally"]


def __getattr__(name: str):
    if name == "ProfileShape":
        from harness.loadgen.shape import ProfileShape

        return ProfileShape
    if name in __all__:
        from harness.loadgen import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
