"""Load profiles as pure functions of elapsed time; `harness.loadgen.shape.ProfileShape` plays them.

A profile maps (elapsed seconds, users, duration) to the user count and spawn rate wanted now, or
None when the test is over. `-u/--users`, `-r/--spawn-rate` and `-t/--run-time` keep their Locust
meaning: the peak user count, how fast to get there, and the whole length of the test.
"""

from __future__ import annotations

from collections.abc import Callable

Tick = tuple[int, float] | None

STEPS = 5


def smoke(elapsed: float, users: int, duration: float, spawn_rate: float) -> Tick:
    """A few users for at most 20 s: does everything answer?"""
    if elapsed >= min(duration, 20.0):
        return None
    return min(users, 4), spawn_rate


def steady(elapsed: float, users: int, duration: float, spawn_rate: float) -> Tick:
    """All users for the whole duration: the closed model's maximum throughput."""
    return None if elapsed >= duration else (users, spawn_rate)


def step(elapsed: float, users: int, duration: float, spawn_rate: float) -> Tick:
    """Users rise in five equal steps to the peak, to find the knee where latency turns up."""
    if elapsed >= duration:
        return None
    current = min(STEPS - 1, int(elapsed / (duration / STEPS)))
    return max(1, round(users * (current + 1) / STEPS)), spawn_rate


def spike(elapsed: float, users: int, duration: float, spawn_rate: float) -> Tick:
    """A quarter of the users, all of them from 30% to 50% of the duration, then a quarter again."""
    if elapsed >= duration:
        return None
    base = max(1, users // 4)
    return (users, max(spawn_rate, float(users))) if 0.3 <= elapsed / duration < 0.5 else (base, spawn_rate)


PROFILES: dict[str, Callable[[float, int, float, float], Tick]] = {
    "smoke": smoke, "steady": steady, "step": step, "spike": spike,
}
DEFAULT_DURATION_S = {"smoke": 20.0, "steady": 60.0, "step": 100.0, "spike": 60.0}


def plan(profile: str, elapsed: float, users: int, duration: float | None, spawn_rate: float | None) -> Tick:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    return PROFILES[profile](elapsed, users, duration or DEFAULT_DURATION_S[profile], spawn_rate or users)


def rate_fraction(profile: str, elapsed: float, duration: float | None) -> float | None:
    """The open model's share of its peak arrival rate now (the user pool stays the same size).

    steady and smoke hold the peak, step rises in five equal steps, spike runs at a quarter of the
    peak except from 30% to 50% of the duration; None when the test is over.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    duration = duration or DEFAULT_DURATION_S[profile]
    if profile == "smoke":
        duration = min(duration, 20.0)
    if elapsed >= duration:
        return None
    if profile == "step":
        return (min(STEPS - 1, int(elapsed / (duration / STEPS))) + 1) / STEPS
    if profile == "spike":
        return 1.0 if 0.3 <= elapsed / duration < 0.5 else 0.25
    return 1.0
