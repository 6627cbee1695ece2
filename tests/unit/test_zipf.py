import random
from collections import Counter

import pytest

from harness.loadgen.zipf import Zipfian


def test_frequencies_follow_the_zipfian_law():
    z = Zipfian(10_000, 0.99, rng=random.Random(1))
    n = 200_000
    counts = Counter(z.next() for _ in range(n))
    assert all(0 <= k < 10_000 for k in counts)
    for rank in (0, 1, 9):
        assert counts[rank] / n == pytest.approx(z.probability(rank), rel=0.1)
    # Skew: the top 1% of items take about half the requests.
    top = sum(counts[k] for k in range(100)) / n
    assert top == pytest.approx(sum(z.probability(k) for k in range(100)), abs=0.02)
    assert 0.4 < top < 0.7


def test_same_seed_same_sequence():
    a = Zipfian(1000, rng=random.Random(5))
    b = Zipfian(1000, rng=random.Random(5))
    assert [a.next() for _ in range(100)] == [b.next() for _ in range(100)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="theta"):
        Zipfian(100, 1.5)
    with pytest.raises(ValueError, match="items"):
        Zipfian(1)


def test_arrival_gaps_fixed_and_poisson():
    from harness.loadgen.arrivals import Arrivals
    from harness.loadgen.recorder import ExactRecorder

    fixed = Arrivals(200, poisson=False, recorder=ExactRecorder())
    assert {fixed._gap(200) for _ in range(10)} == {0.005}
    poisson = Arrivals(200, poisson=True, recorder=ExactRecorder(), seed=3)
    gaps = [poisson._gap(200) for _ in range(20_000)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.005, rel=0.03) and len(set(gaps)) > 19_000
    with pytest.raises(ValueError, match="rate must be > 0"):
        Arrivals(0, poisson=False, recorder=ExactRecorder())
