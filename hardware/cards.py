"""The card-reader interface every reader adapter implements.

A reader runs its own blocking loop in a thread owned by the daemon and reports each tap through
a callback. It never raises out of `run` for device trouble: an unplugged reader, a restarted
pcscd or a vanished serial port is a status (`ReaderStatus`) that the loop retries until `stop`
is set, so missing hardware never stops the daemon.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class ReaderState(StrEnum):
    OK = "ok"  # open and waiting for cards
    ABSENT = "absent"  # device not found; retrying
    ERROR = "error"  # device present but failing; retrying
    STOPPED = "stopped"


@dataclass(frozen=True)
class ReaderStatus:
    state: ReaderState
    detail: str = ""
    since: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CardTap:
    """One card presented to a reader.

    `uid` is the card number exactly as the reader delivered it (hex for PC/SC and most
    serial modules, decimal digits for keyboard-wedge readers); converting it to the form the
    roster uses is the job of one function, not of each reader:
    `hardware.card_uid.normalise(tap.uid, tap.delivered_as, roster_form)`.
    `delivered_as` is a `hardware.card_uid.UidFormat` value naming the reader's form.
    """

    uid: str
    reader: str
    monotonic: float = field(default_factory=time.monotonic)
    delivered_as: str = "hex"


TapCallback = Callable[[CardTap], None]


@runtime_checkable
class CardReader(Protocol):
    """What the daemon needs from a reader."""

    name: str

    def run(self, on_tap: TapCallback, stop: threading.Event) -> None:
        """Block until `stop` is set, calling `on_tap` once per card presented."""
        ...

    def status(self) -> ReaderStatus:
        """The current state, for /api/health and `kiosk doctor`."""
        ...
