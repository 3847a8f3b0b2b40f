"""Exponential backoff for reader reconnect loops.

Readers retry a missing device forever (until `stop`), so the delay grows to a ceiling instead
of hammering a dead USB port or pcscd socket; the jitter keeps several readers that lost the
same hub from retrying in lockstep.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, jitter: float = 0.1) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self._next = initial_s

    def reset(self) -> None:
        """Call after a successful (re)connection."""
        self._next = self.initial_s

    def next_delay(self) -> float:
        """The delay before the next attempt; doubles each call up to `max_s`."""
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))
