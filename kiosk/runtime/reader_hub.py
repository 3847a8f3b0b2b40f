"""Runs the configured card readers in their own threads and reports their health."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hardware.cards import CardReader, CardTap, ReaderState, ReaderStatus
from kiosk.config import ReaderConfig

log = logging.getLogger(__name__)

RESTART_DELAY_S = 2.0


@dataclass
class ReaderSlot:
    config: ReaderConfig
    reader: CardReader
    thread: threading.Thread | None = None


class ReaderHub:
    """Owns reader threads. A reader whose loop dies is logged and restarted, never fatal."""

    def __init__(self, readers: list[tuple[ReaderConfig, CardReader]]) -> None:
        self.slots = [ReaderSlot(cfg, reader) for cfg, reader in readers]

    def start(self, on_tap: Callable[[ReaderConfig, CardTap], None], stop: threading.Event) -> None:
        for slot in self.slots:
            slot.thread = threading.Thread(
                target=self._supervise,
                args=(slot, on_tap, stop),
                name=f"reader-{slot.config.name}",
                daemon=True,
            )
            slot.thread.start()

    @staticmethod
    def _supervise(
        slot: ReaderSlot, on_tap: Callable[[ReaderConfig, CardTap], None], stop: threading.Event
    ) -> None:
        while not stop.is_set():
            try:
                slot.reader.run(lambda tap: on_tap(slot.config, tap), stop)
            except Exception:  # a reader bug must not take card check-in down for good
                log.exception("reader %s crashed; restarting", slot.config.name)
                stop.wait(RESTART_DELAY_S)

    def join(self, timeout: float = 5.0) -> None:
        for slot in self.slots:
            if slot.thread is not None:
                slot.thread.join(timeout)
                if slot.thread.is_alive():
                    log.warning("reader %s did not stop within %.0fs", slot.config.name, timeout)

    def statuses(self) -> dict[str, ReaderStatus]:
        out = {}
        for slot in self.slots:
            status = slot.reader.status()
            if slot.thread is not None and not slot.thread.is_alive():
                status = ReaderStatus(ReaderState.STOPPED, "reader thread not running")
            out[slot.config.name] = status
        return out

    def find(self, kind: str) -> list[ReaderSlot]:
        return [s for s in self.slots if s.config.kind == kind]
