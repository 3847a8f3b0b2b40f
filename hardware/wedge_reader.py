"""USB "keyboard wedge" card readers (免驱 ID/IC readers that type the card number + Enter).

The reader is opened through evdev at a configured path (use the stable
``/dev/input/by-id/usb-...-event-kbd`` link) and *grabbed*, so its keystrokes reach only us
and never the touchscreen's focused widget. Key-down events are assembled into a number until
KEY_ENTER or KEY_KPENTER. A reader types a whole number within a few tens of milliseconds; a
gap longer than `key_timeout_s` between keys means a partial number (card pulled away
mid-read, a stray key), which is dropped rather than glued to the next card.

The assembly (`KeyAssembler`) is separate from the device loop so it can be tested with plain
event tuples. Unplugging the reader is ABSENT (retried with backoff), a device that cannot be
opened or grabbed is ERROR.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from evdev import InputDevice, ecodes

from hardware.backoff import Backoff
from hardware.cards import CardTap, ReaderState, ReaderStatus, TapCallback

log = logging.getLogger(__name__)

KEY_DOWN = 1  # evdev key values: 0 up, 1 down, 2 autorepeat (ignored)
ENTER_KEYS = frozenset({ecodes.KEY_ENTER, ecodes.KEY_KPENTER})
KEY_CHARS: dict[int, str] = {
    **{getattr(ecodes, f"KEY_{d}"): str(d) for d in range(10)},
    **{getattr(ecodes, f"KEY_KP{d}"): str(d) for d in range(10)},
    # hex-typing readers; Shift arrives as a separate key and is ignored
    **{getattr(ecodes, f"KEY_{c}"): c for c in "ABCDEF"},
}
MAX_DIGITS = 32


class KeyAssembler:
    """Key events in, card numbers out. Times are the events' own timestamps (seconds)."""

    def __init__(self, key_timeout_s: float = 0.3) -> None:
        self.key_timeout_s = key_timeout_s
        self._chars: list[str] = []
        self._last = 0.0

    def feed(self, ev_type: int, code: int, value: int, timestamp: float) -> str | None:
        """One input event; returns a card number when Enter completes one."""
        if ev_type != ecodes.EV_KEY or value != KEY_DOWN:
            return None
        self.expire(timestamp)
        self._last = timestamp
        if code in ENTER_KEYS:
            number = "".join(self._chars)
            self._chars.clear()
            return number or None
        char = KEY_CHARS.get(code)
        if char is None:
            return None  # modifiers and keys a reader does not type
        self._chars.append(char)
        if len(self._chars) > MAX_DIGITS:
            log.warning("wedge: more than %d keys without Enter; dropped", MAX_DIGITS)
            self._chars.clear()
        return None

    def expire(self, now: float) -> None:
        """Drop a partial number whose next key is overdue."""
        if self._chars and now - self._last > self.key_timeout_s:
            log.info("wedge: partial card number %s timed out; dropped", "".join(self._chars))
            self._chars.clear()

    @property
    def pending(self) -> str:
        return "".join(self._chars)


class _Device(Protocol):
    """The part of evdev.InputDevice the reader uses."""

    fd: int

    def grab(self) -> None: ...
    def read(self) -> Iterable[Any]: ...
    def close(self) -> None: ...


class WedgeReader:
    def __init__(
        self,
        device: str,
        name: str = "wedge",
        delivered_as: str = "dec10",
        key_timeout_s: float = 0.3,
        grab: bool = True,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        open_device: Callable[[str], _Device] = InputDevice,
    ) -> None:
        self.device = device
        self.name = name
        self.delivered_as = delivered_as
        self.key_timeout_s = key_timeout_s
        self.grab = grab
        self._open_device = open_device  # replaceable in tests
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._status = ReaderStatus(ReaderState.STOPPED, "not started")

    def status(self) -> ReaderStatus:
        return self._status

    def run(self, on_tap: TapCallback, stop: threading.Event) -> None:
        while not stop.is_set():
            device = self._open(stop)
            if device is None:
                continue
            try:
                self._read_loop(device, on_tap, stop)
                lost = None
            except OSError as exc:
                lost = exc
            finally:
                with contextlib.suppress(OSError):  # already gone with the device
                    device.close()
            if lost is not None:  # retry only after closing, so a replug finds it free
                gone = lost.errno in (errno.ENODEV, errno.ENOENT, errno.EIO)
                state = ReaderState.ABSENT if gone else ReaderState.ERROR
                log.warning("%s: %s lost: %s", self.name, self.device, lost)
                self._retry(stop, state, f"{self.device} lost: {lost}")
        self._status = ReaderStatus(ReaderState.STOPPED, "stopped")

    def _open(self, stop: threading.Event) -> _Device | None:
        try:
            device = self._open_device(self.device)
        except FileNotFoundError:
            self._retry(stop, ReaderState.ABSENT, f"{self.device} not found (reader unplugged?)")
            return None
        except PermissionError as exc:
            why = f"cannot open {self.device}: {exc} (add the kiosk user to group 'input')"
            self._retry(stop, ReaderState.ERROR, why)
            return None
        except OSError as exc:
            state = ReaderState.ERROR if Path(self.device).exists() else ReaderState.ABSENT
            self._retry(stop, state, f"cannot open {self.device}: {exc}")
            return None
        if self.grab:
            try:
                device.grab()
            except OSError as exc:
                device.close()
                why = f"cannot grab {self.device}: {exc} (another program holds it?)"
                self._retry(stop, ReaderState.ERROR, why)
                return None
        self._backoff.reset()
        grabbed = "grabbed" if self.grab else "NOT grabbed"
        self._status = ReaderStatus(ReaderState.OK, f"{self.device} open, {grabbed}")
        log.info("%s: %s", self.name, self._status.detail)
        return device

    def _retry(self, stop: threading.Event, state: ReaderState, why: str) -> None:
        delay = self._backoff.next_delay()
        self._status = ReaderStatus(state, f"{why}; retry in {delay:.1f}s")
        stop.wait(delay)

    def _read_loop(self, device: _Device, on_tap: TapCallback, stop: threading.Event) -> None:
        assembler = KeyAssembler(self.key_timeout_s)
        while not stop.is_set():
            # Wake at least every 0.5 s to notice `stop`; sooner to expire a partial number.
            readable, _, _ = select.select([device.fd], [], [], 0.5)
            if not readable:
                assembler.expire(_event_clock_now())
                continue
            try:
                events = list(device.read())
            except BlockingIOError:
                continue
            for event in events:
                number = assembler.feed(event.type, event.code, event.value, event.timestamp())
                if number:
                    self._deliver(number, on_tap)

    def _deliver(self, number: str, on_tap: TapCallback) -> None:
        log.info("%s: card %s", self.name, number)
        try:
            on_tap(CardTap(uid=number, reader=self.name, delivered_as=self.delivered_as))
        except Exception:  # a failing consumer must not kill the reader thread
            log.exception("tap handler failed for card %s on %s", number, self.name)


def _event_clock_now() -> float:
    # evdev stamps events with CLOCK_REALTIME unless a client asks otherwise.
    return time.time()
