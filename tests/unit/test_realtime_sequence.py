"""Real-time Updates' sequence accounting, without services: in order, gaps, duplicates, the unreceived
tail, and the invariant results built from the tallies (each seen failing)."""

import os

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")  # this pytest process must stay unpatched

from harness.loadgen.push import Sequence  # noqa: E402
from locustfiles.realtime_checks import check_sequences, unreceived_tail  # noqa: E402


def test_in_order_counts_nothing():
    seq = Sequence()
    assert [seq.observe(n) for n in (5, 6, 7)] == [0, 0, 0]
    assert (seq.first, seq.last, seq.received, seq.lost, seq.duplicated) == (5, 7, 3, 0, 0)


def test_a_jump_is_lost_messages_and_a_repeat_is_a_duplicate():
    seq = Sequence()
    assert [seq.observe(n) for n in (1, 2, 6, 6, 3, 7)] == [0, 0, 3, -1, -1, 0]
    assert (seq.lost, seq.duplicated, seq.last) == (3, 2, 7)


def test_the_unreceived_tail_counts_what_was_owed():
    a, b, silent = Sequence(), Sequence(), Sequence()
    a.observe(10)
    b.observe(20)
    subscribers = [(0, a), (1, b), (0, silent)]
    assert unreceived_tail(subscribers, {0: 14, 1: 20}) == 4
    assert unreceived_tail(subscribers, {0: 9, 1: None}) == 0


def test_invariants_hold_on_clean_tallies_and_fail_on_loss_or_duplicates():
    clean = check_sequences({"messages_received": 100, "subscribers": 2})
    assert [(r.name, r.passed) for r in clean] == [("lost_messages", True), ("duplicate_messages", True)]
    lost = check_sequences({"messages_received": 50, "messages_lost": 2, "messages_unreceived": 1})
    assert lost[0].value == 3 and not lost[0].passed
    assert not check_sequences({"messages_received": 50, "messages_duplicated": 1})[1].passed


def test_a_subscriber_that_received_nothing_owes_what_was_published_to_it():
    """One subscriber got everything, another got nothing while 7 messages went to its channel: lost."""
    owed = check_sequences({"messages_received": 40, "subscribers": 2, "silent_subscribers": 1,
                            "messages_unreceived_silent": 7})
    assert owed[0].value == 7 and not owed[0].passed and "1 subscribers that received nothing" in owed[0].detail


def test_subscribers_that_received_nothing_at_all_are_not_a_pass():
    for tallies in ({"subscribers": 4}, {}):
        results = check_sequences(tallies)
        assert [r.passed for r in results] == [False, False]
        assert all("not measured" in r.detail for r in results)
