import pytest

from harness.shapes import PROFILES, plan


def test_steady_holds_users_until_duration():
    assert plan("steady", 0, 32, 30, None) == (32, 32)
    assert plan("steady", 29.9, 32, 30, 8) == (32, 8)
    assert plan("steady", 30, 32, 30, 8) is None


def test_smoke_is_small_and_never_longer_than_20s():
    assert plan("smoke", 0, 100, 600, None)[0] <= 4
    assert plan("smoke", 19.9, 100, 600, None) is not None
    assert plan("smoke", 20, 100, 600, None) is None


def test_step_rises_in_five_steps_to_the_peak():
    counts = [plan("step", t, 50, 100, None)[0] for t in range(0, 100, 5)]
    assert counts == sorted(counts)
    assert counts[0] == 10 and counts[-1] == 50
    assert len(set(counts)) == 5
    assert plan("step", 100, 50, 100, None) is None


def test_spike_peaks_in_the_middle_only():
    users = {t: plan("spike", t, 40, 100, 4)[0] for t in (10, 35, 45, 60, 90)}
    assert users == {10: 10, 35: 40, 45: 40, 60: 10, 90: 10}


def test_default_durations_and_errors():
    assert plan("step", 99, 10, None, None) is not None  # the profile's own default applies
    with pytest.raises(ValueError, match="unknown profile"):
        plan("ramp", 0, 10, 10, None)
    with pytest.raises(ValueError, match="at least 1"):
        plan("steady", 0, 0, 10, None)
    assert set(PROFILES) == {"smoke", "steady", "step", "spike"}


def test_rate_fraction_follows_the_profile():
    from harness.shapes import rate_fraction

    assert [rate_fraction("step", t, 50) for t in (0, 10, 20, 30, 45)] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert rate_fraction("step", 50, 50) is None
    assert rate_fraction("steady", 59, None) == 1.0 and rate_fraction("steady", 60, None) is None
    assert rate_fraction("spike", 40, 100) == 1.0 and rate_fraction("spike", 10, 100) == 0.25
    assert rate_fraction("smoke", 19, 600) == 1.0 and rate_fraction("smoke", 20, 600) is None
    with pytest.raises(ValueError):
        rate_fraction("ramp", 0, 10)
