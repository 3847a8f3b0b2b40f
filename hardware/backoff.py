"""When to try again: full-jitter exponential backoff with a cap, and Retry-After honoured.

The one backoff of the project. Card readers and the camera reconnect with it (a dead USB port
or pcscd socket is retried forever, but not hammered); the kiosk hands an instance to the sync
jobs, which hold off the platform with it.

Why here: the import rules let hardware/ import nothing of ours and forbid sync -> hardware, so
no module could be shared by both through an import. hardware/ has the most users (four
device loops that build their own), while the sync runner already takes its backoff as a
constructor argument; so the implementation lives here, sync/backoff.py declares only the
interface it needs (a Protocol), and the kiosk, which may import both, injects this class.

Full jitter (a uniform draw in [0, min(cap, base * 2^(n-1))]) spreads retries so that devices
that lost the same hub, or a whole county coming back online after an outage, do not retry in
lock-step. A server's Retry-After is a floor: never sooner than asked, plus a jitter of up to
one base interval so that every kiosk told "60" does not return at the same second.
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
    """Consecutive failures and the earliest time to try again.

    A reconnect loop waits `next_delay()` after each failure and calls `reset()` once the
    device works; a scheduled job asks `ready()` before it runs.
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        *,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap (got base {base}, cap {cap})")
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        self.failures = 0
        self.not_before = 0.0

    def next_delay(self, retry_after: float | None = None) -> float:
        """Note a failure; the delay before the next attempt (at least `retry_after`)."""
        self.failures += 1
        delay = backoff_delay(
            self.failures, base=self.base, cap=self.cap, rng=self.rng, retry_after=retry_after
        )
        self.not_before = self.monotonic() + delay
        return delay

    def reset(self) -> None:
        """Call after a success: the next failure starts again from `base`."""
        self.failures = 0
        self.not_before = 0.0

    def ready(self) -> bool:
        return self.monotonic() >= self.not_before

    def wait_s(self) -> float:
        return max(0.0, self.not_before - self.monotonic())
