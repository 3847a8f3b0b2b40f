"""What the sync jobs need of a backoff; the one implementation is hardware/backoff.py.

sync/ may not import hardware/ (and hardware/ imports nothing of ours), so the kiosk, which may
import both, builds `hardware.backoff.Backoff` and passes it to `start_sync_jobs`. This module
only names the interface, so the sync code stays checked against it.
"""

from __future__ import annotations

from typing import Protocol


class Backoff(Protocol):
    """The gate a scheduled job checks before talking to the platform."""

    def ready(self) -> bool:
        """True once the wait chosen after the last failure is over."""
        ...

    def wait_s(self) -> float:
        """Seconds left before `ready()`."""
        ...

    def next_delay(self, retry_after: float | None = None) -> float:
        """Note a failure (honouring the server's Retry-After); returns the delay chosen."""
        ...

    def reset(self) -> None:
        """Note a success."""
        ...
