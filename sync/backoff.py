"""When to try again: full-jitter exponential backoff with a cap, and Retry-After honoured.

Full jitter (a uniform draw in [0, min(cap, base * 2^n)]) spreads retries so that a whole
county coming back online after an outage does not hit the platform in lock-step. A server's
Retry-After is a floor: we never come back sooner than asked, plus a jitter of up to one base
interval so that every kiosk told "60" does not return at the same second.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


def backoff_delay(
    failures: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after `failures` consecutive failures (>= 1)."""
    ceiling = min(cap, base * (2 ** max(0, failures - 1)))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after + rng.uniform(0.0, base))
    return delay


class Backoff:
    """The gate a scheduled job checks before talking to the platform."""

    def __init__(
        self,
        *,
        base: float = 5.0,
        cap: float = 900.0,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        self.failures = 0
        self.not_before = 0.0

    def ready(self) -> bool:
        return self.monotonic() >= self.not_before

    def wait_s(self) -> float:
        return max(0.0, self.not_before - self.monotonic())

    def success(self) -> None:
        self.failures = 0
        self.not_before = 0.0

    def failure(self, retry_after: float | None = None) -> float:
        """Note a failure; returns the delay chosen."""
        self.failures += 1
        delay = backoff_delay(
            self.failures, base=self.base, cap=self.cap, rng=self.rng, retry_after=retry_after
        )
        self.not_before = self.monotonic() + delay
        return delay
