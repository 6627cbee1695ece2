"""Real-time Updates' sequence checks as pure functions (the locustfile registers them; tests call them)."""

from __future__ import annotations

from harness.loadgen.push import Sequence
from harness.spec import InvariantResult


def unreceived_tail(subscribers: list[tuple[int, Sequence]], heads: dict[int, int | None]) -> int:
    """Messages published (up to each channel's head) after a subscriber's last one that it never got."""
    return sum(max(0, heads[channel] - seq.last) for channel, seq in subscribers
               if seq.last is not None and heads.get(channel) is not None)



def check_sequences(tallies: dict) -> list[InvariantResult]:
    received, subscribers = tallies.get("messages_received", 0), tallies.get("subscribers", 0)
    gaps, tail = tallies.get("messages_lost", 0), tallies.get("messages_unreceived", 0)
    duplicated = tallies.get("messages_duplicated", 0)
    where = (f"{subscribers} subscribers received {received} messages; {tallies.get('disconnects', 0)} "
             f"disconnects, {tallies.get('reconnects', 0)} reconnects")
    return [InvariantResult("lost_messages", gaps + tail, "0", gaps + tail == 0,
                            f"{gaps} skipped inside a sequence, {tail} never received after the last one; {where}"),
            InvariantResult("duplicate_messages", duplicated, "0", duplicated == 0, where)]
