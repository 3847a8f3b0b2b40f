"""A simulated card reader driven by the demo and the tests.

It implements the same `CardReader` interface as the real readers: taps are queued with
`tap(uid)` (or fed from a script of UIDs at a human pace) and delivered from the reader's own
thread, exactly like a device would deliver them.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Sequence

from hardware.cards import CardTap, ReaderState, ReaderStatus, TapCallback

log = logging.getLogger(__name__)


class SimulatedReader:
    def __init__(self, name: str = "simulated", delivered_as: str = "hex") -> None:
        self.name = name
        self.delivered_as = delivered_as
        self._queue: queue.Queue[str] = queue.Queue()
        self._status = ReaderStatus(ReaderState.STOPPED, "not started")

    def tap(self, uid: str) -> None:
        """Present a card; safe to call from any thread."""
        self._queue.put(uid)

    def status(self) -> ReaderStatus:
        return self._status

    def run(self, on_tap: TapCallback, stop: threading.Event) -> None:
        self._status = ReaderStatus(ReaderState.OK, "simulated reader ready")
        while not stop.is_set():
            try:
                uid = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                on_tap(CardTap(uid=uid, reader=self.name, delivered_as=self.delivered_as))
            except Exception:  # a failing consumer must not kill the reader thread
                log.exception("tap handler failed for a card on %s", self.name)
        self._status = ReaderStatus(ReaderState.STOPPED, "stopped")


def tap_at_human_pace(
    reader: SimulatedReader,
    uids: Sequence[str],
    stop: threading.Event,
    mean_gap_s: float = 4.0,
    seed: int | None = None,
) -> None:
    """Feed `uids` to `reader` with random gaps, as a queue of elders would; for the demo."""
    rng = random.Random(seed)
    for uid in uids:
        if stop.wait(rng.uniform(0.5 * mean_gap_s, 1.5 * mean_gap_s)):
            return
        reader.tap(uid)
