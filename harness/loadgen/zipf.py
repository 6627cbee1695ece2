"""YCSB's zipfian key chooser (Gray et al., "Quickly generating billion-record synthetic databases").

Item 0 is the most popular. With the constant theta = 0.99 (YCSB's default) over 100k items, the
hottest item gets about 8% of requests and the top 1% of items about half of them.
"""

from __future__ import annotations

import random


def zeta(n: int, theta: float) -> float:
    return sum(1.0 / (i**theta) for i in range(1, n + 1))


class Zipfian:
    def __init__(self, items: int, theta: float = 0.99, rng: random.Random | None = None) -> None:
        if items < 2:
            raise ValueError(f"items must be at least 2, got {items}")
        if not 0 < theta < 1:
            raise ValueError(f"theta must be in (0, 1), got {theta}")
        self.items, self.theta = items, theta
        self.rng = rng or random.Random()
        self.zetan = zeta(items, theta)
        self.alpha = 1.0 / (1.0 - theta)
        self.eta = (1 - (2.0 / items) ** (1 - theta)) / (1 - zeta(2, theta) / self.zetan)
        self.half_pow_theta = 1 + 0.5**theta

    def probability(self, rank: int) -> float:
        """Exact probability of item `rank` (0-based)."""
        return 1.0 / ((rank + 1) ** self.theta) / self.zetan

    def next(self) -> int:
        u = self.rng.random()
        uz = u * self.zetan
        if uz < 1.0:
            return 0
        if uz < self.half_pow_theta:
            return 1
        return min(self.items - 1, int(self.items * (self.eta * u - self.eta + 1) ** self.alpha))
