"""Real-time Updates' sequence checks as pure functions (the locustfile registers them; tests call them)."""

from __future__ import annotations

from harness.loadgen.push import Sequence
from harness.spec import InvariantResult


def unreceived_tail(subscribers: list[tuple[int, Sequence]], heads: dict[int, int | None]) -> int:
    """Messages published (up to each channel's head) after a subscriber's last one that it never got."""
    return sum(max(0, heads[channel] - seq.last) for channel, seq in subscribers
               if seq.last is not None and heads.get(channel) is not None)



def check_sequences(tallies: dict) -> list[InvariantResult]:
    """Lost: skipped inside a sequence, never received after a subscriber's last message, or published
    on the channel of a subscriber that received nothing. Subscribers that together received nothing
    fail both checks: nothing was checked."""
    received, subscribers = tallies.get("messages_received", 0), tallies.get("subscribers", 0)
    gaps, tail = tallies.get("messages_lost", 0), tallies.get("messages_unreceived", 0)
    silent, owed_silent = tallies.get("silent_subscribers", 0), tallies.get("messages_unreceived_silent", 0)
    duplicated = tallies.get("messages_duplicated", 0)
    where = (f"{subscribers} subscribers received {received} messages; {tallies.get('disconnects', 0)} "
             f"disconnects, {tallies.get('reconnects', 0)} reconnects")
    if not received:
        nothing = f"not measured: {where}" if subscribers else "not measured: no subscriber ran"
        return [InvariantResult("lost_messages", 1, "0", False, nothing),
                InvariantResult("duplicate_messages", 1, "0", False, nothing)]
    lost = gaps + tail + owed_silent
    return [InvariantResult("lost_messages", lost, "0", lost == 0,
                            f"{gaps} skipped inside a sequence, {tail} never received after the last one, "
                            f"{owed_silent} published to {silent} subscribers that received nothing; {where}"),
            InvariantResult("duplicate_messages", duplicated, "0", duplicated == 0, where)]
