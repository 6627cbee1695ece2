"""A counter's increase over a window, from its raw samples: resets (a restarted process) count."""

from harness.prom import counter_increase


def test_growth_after_the_baseline_sample():
    assert counter_increase([(1, 5), (2, 7), (3, 9)], start=1) == 4


def test_a_reset_adds_the_new_count_instead_of_subtracting():
    # the consumer restarted at t=3: 5 -> 7 (+2), then 0 -> 2 (+2), then 2 -> 6 (+4)
    assert counter_increase([(1, 5), (2, 7), (3, 2), (4, 6)], start=1) == 8


def test_a_series_born_inside_the_window_counts_from_zero():
    assert counter_increase([(2, 3), (3, 5)], start=1) == 5


def test_nothing_after_the_start_is_no_growth():
    assert counter_increase([(0, 5), (1, 6)], start=1) == 0
