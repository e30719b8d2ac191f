"""Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff and Jitter")."""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter_delay(
    attempt: int, base: float, cap: float, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """A delay drawn uniformly from [0, min(cap, base * 2 ** (attempt - 1))] seconds."""
    return uniform(0.0, min(cap, base * 2 ** max(attempt - 1, 0)))
