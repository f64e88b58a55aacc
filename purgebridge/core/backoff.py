"""Exponential backoff with jitter: how long a failed purge waits before the next try.

One function for the fan-out's own retries and the queue's (``nack``): both
sides of the relay wait alike, and neither imports the other for it.
"""

import random
from typing import Callable

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Delay before try ``attempt`` (1 = first retry): base*2^(n-1), capped, jittered to 50-100 %."""
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay * (0.5 + rng() / 2)
