from __future__ import annotations

import random

from connector.delivery.backoff import full_jitter_delay


def test_full_jitter_stays_within_the_exponential_bound_and_the_cap():
    rng = random.Random(7)
    for attempt in range(1, 15):
        bound = min(600.0, 5.0 * 2 ** (attempt - 1))
        delays = [full_jitter_delay(attempt, 5.0, 600.0, rng.uniform) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound * 0.8  # the whole range is used, not a fixed delay


def test_the_extremes_of_the_draw_map_to_zero_and_the_bound():
    assert full_jitter_delay(3, 5.0, 600.0, lambda lo, hi: hi) == 20.0
    assert full_jitter_delay(20, 5.0, 600.0, lambda lo, hi: hi) == 600.0
    assert full_jitter_delay(3, 5.0, 600.0, lambda lo, hi: lo) == 0.0
