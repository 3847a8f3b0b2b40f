"""Backoff: the one retry timing of readers, camera and (injected by the kiosk) sync jobs."""

from __future__ import annotations

import random

import pytest

from hardware.backoff import Backoff, backoff_delay


def test_full_jitter_window_doubles_to_the_cap() -> None:
    rng = random.Random(3)
    for failures, ceiling in enumerate((0.5, 1.0, 2.0, 4.0, 4.0, 4.0), start=1):
        delays = [backoff_delay(failures, base=0.5, cap=4.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter: spread over the whole window, not bunched at the top.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_failures_grow_the_window_and_reset_starts_again() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(5))
    delays = [backoff.next_delay() for _ in range(40)]
    assert backoff.failures == 40
    assert max(delays[:1]) <= 0.5 and max(delays) > 2.0  # the window grew
    for _ in range(50):
        backoff.reset()
        assert backoff.failures == 0
        assert backoff.next_delay() <= 0.5


def test_retry_after_is_a_floor_even_above_the_cap() -> None:
    clock = [100.0]
    backoff = Backoff(2, 10, rng=random.Random(1), monotonic=lambda: clock[0])
    assert backoff.ready()
    delay = backoff.next_delay(retry_after=60)
    assert 60 <= delay <= 62  # never sooner than asked, plus at most one base of jitter
    assert not backoff.ready() and backoff.wait_s() == pytest.approx(delay)
    clock[0] += delay
    assert backoff.ready() and backoff.wait_s() == 0
    backoff.next_delay()
    backoff.reset()
    assert backoff.ready()


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_rejects_nonsense(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base, cap)
