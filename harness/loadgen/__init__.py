"""Locust extensions shared by every locustfile: exact latencies, load-side metrics, the shape.

    from harness.modules.<id> import SPEC
    plugin = loadgen.setup(SPEC)            # once, at the locustfile's import
    class Shopper(loadgen.Paced, FastHttpUser): ...
    @plugin.invariant("lost_writes")        # a name the spec declares
    def check(environment): return [InvariantResult(...)]

Importing locust patches the whole process for gevent, so the pure parts (`recorder`, `zipf`,
`invariants`) import without it and the Locust-facing names load on first use.
"""

from __future__ import annotations

__all__ = ["LongPollUser", "Paced", "Plugin", "ProfileShape", "SSEUser", "ShortPollUser", "WebSocketUser", "setup"]
PUSH_USERS = ("LongPollUser", "SSEUser", "ShortPollUser", "WebSocketUser")  # harness.loadgen.push


def __getattr__(name: str):
    if name == "ProfileShape":
        from harness.loadgen.shape import ProfileShape

        return ProfileShape
    if name in PUSH_USERS:
        from harness.loadgen import push

        return getattr(push, name)
    if name in __all__:
        from harness.loadgen import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
