"""Backoff: the reconnect delay of every reader."""

from __future__ import annotations

import pytest

from hardware.backoff import Backoff


def test_doubles_to_the_ceiling_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jitter_stays_within_bounds() -> None:
    backoff = Backoff(1.0, 1.0, jitter=0.1)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.9 <= d <= 1.1 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(("initial", "ceiling"), [(0, 1), (-1, 1), (2, 1)])
def test_rejects_nonsense(initial: float, ceiling: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial, ceiling)
