""" "Same face still in view": one check-in per appearance, not one per frame.

The face worker matches the same elder on many consecutive frames. `PresenceGuard.observe`
answers True only for the first sighting of an appearance; it re-arms for that elder after
they have not been seen for `rearm_after_s`. The check-in service still refuses a second meal in
the same slot ("已签到"); the guard keeps that from happening 30 times a second and keeps the
duplicate prompt from repeating while the elder is still standing there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable


class PresenceGuard:
    def __init__(self, rearm_after_s: float = 10.0) -> None:
        self.rearm_after_s = rearm_after_s
        self._last_seen: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def observe(self, elder_id: Hashable, now: float | None = None) -> bool:
        """Record a sighting; True if it starts a new appearance (act on it), else False."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last_seen.get(elder_id)
            self._last_seen[elder_id] = now
            self._prune(now)
            return last is None or now - last > self.rearm_after_s

    def in_view(self, elder_id: Hashable, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last_seen.get(elder_id)
            return last is not None and now - last <= self.rearm_after_s

    def forget(self, elder_id: Hashable) -> None:
        """Re-arm at once, e.g. when the check-in was refused for a reason the elder can fix."""
        with self._lock:
            self._last_seen.pop(elder_id, None)

    def _prune(self, now: float) -> None:
        # Bounded memory over a day of meals: drop elders gone longer than the re-arm time.
        if len(self._last_seen) > 64:
            cutoff = now - self.rearm_after_s
            for key in [k for k, t in self._last_seen.items() if t < cutoff]:
                del self._last_seen[key]
