"""WedgeReader: key assembly from real evdev event sequences, the device loop, and uinput.

The uinput test types into a virtual keyboard and needs /dev/uinput (kernel module uinput) and
a /dev/input node for it; containers usually have neither, so it skips and says so. The same
decoding code is covered by the event-sequence tests, which use evdev's own InputEvent.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from evdev import InputEvent, ecodes

from hardware.cards import ReaderState
from hardware.wedge_reader import KeyAssembler, WedgeReader
from tests.support.wait import wait_until

KEY_FOR = {
    **{str(d): getattr(ecodes, f"KEY_{d}") for d in range(10)},
    **{c: getattr(ecodes, f"KEY_{c}") for c in "ABCDEF"},
    "\n": ecodes.KEY_ENTER,
}


def typed(text: str, start: float = 1000.0, gap_s: float = 0.008) -> list[InputEvent]:
    """The events a wedge reader emits typing `text`: MSC_SCAN, key down, SYN, key up, SYN."""
    events = []
    t = start
    for char in text:
        code = KEY_FOR[char]
        sec, usec = int(t), round((t - int(t)) * 1e6)
        events += [
            InputEvent(sec, usec, ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000 + code),
            InputEvent(sec, usec, ecodes.EV_KEY, code, 1),
            InputEvent(sec, usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0),
            InputEvent(sec, usec + 2000, ecodes.EV_KEY, code, 0),
            InputEvent(sec, usec + 2000, ecodes.EV_SYN, ecodes.SYN_REPORT, 0),
        ]
        t += gap_s
    return events


def assemble(events: list[InputEvent], key_timeout_s: float = 0.3) -> list[str]:
    assembler = KeyAssembler(key_timeout_s)
    out = [assembler.feed(e.type, e.code, e.value, e.timestamp()) for e in events]
    return [n for n in out if n]


# -- key assembly ----------------------------------------------------------------------------


def test_digits_then_enter_make_one_number() -> None:
    assert assemble(typed("0077740828\n")) == ["0077740828"]


def test_two_cards_back_to_back() -> None:
    events = typed("0077740828\n") + typed("0473670148\n", start=1001.0)
    assert assemble(events) == ["0077740828", "0473670148"]


def test_keypad_digits_and_keypad_enter() -> None:
    events = [
        InputEvent(5, i * 10_000, ecodes.EV_KEY, code, 1)
        for i, code in enumerate([ecodes.KEY_KP4, ecodes.KEY_KP2, ecodes.KEY_KPENTER])
    ]
    assert assemble(events) == ["42"]


def test_hex_reader_with_shift_keys() -> None:
    shift = InputEvent(1000, 40_000, ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 1)
    events = [*typed("04A2"), shift, *typed("3B1C\n", start=1000.05)]
    assert assemble(events) == ["04A23B1C"]


def test_partial_number_is_dropped_after_the_key_timeout() -> None:
    # A card pulled away after five digits, the next card read a second later.
    events = typed("00777") + typed("0473670148\n", start=1001.0)
    assert assemble(events) == ["0473670148"]


def test_a_slow_gap_inside_a_number_drops_the_first_part() -> None:
    events = typed("00777") + typed("40828\n", start=1000.5)
    assert assemble(events, key_timeout_s=0.3) == ["40828"]
    assert assemble(events, key_timeout_s=1.0) == ["0077740828"]


def test_enter_alone_and_autorepeat_give_nothing_extra() -> None:
    repeat = InputEvent(1000, 30_000, ecodes.EV_KEY, ecodes.KEY_7, 2)
    assert assemble(typed("\n")) == []
    assert assemble([*typed("12"), repeat, *typed("3\n", start=1000.04)]) == ["123"]


def test_expire_drops_a_pending_partial_while_idle() -> None:
    assembler = KeyAssembler(0.3)
    for e in typed("123"):
        assembler.feed(e.type, e.code, e.value, e.timestamp())
    assembler.expire(1000.1)
    assert assembler.pending == "123"
    assembler.expire(1001.0)
    assert assembler.pending == ""


# -- the device loop, with a stand-in device -------------------------------------------------


class PipeDevice:
    """Stands in for evdev.InputDevice: a pipe to select() on and a queue of real events."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self.fd = self._r
        self.events: queue.Queue[InputEvent] = queue.Queue()
        self.grabbed = False
        self.gone = False
        self.closed = False

    def type(self, text: str) -> None:
        for event in typed(text, start=time.time()):
            self.events.put(event)
        os.write(self._w, b"x")

    def unplug(self) -> None:
        self.gone = True
        os.write(self._w, b"x")

    def grab(self) -> None:
        self.grabbed = True

    def read(self) -> list[InputEvent]:
        os.read(self._r, 1024)
        if self.gone:
            raise OSError(errno.ENODEV, "No such device")
        out = []
        while not self.events.empty():
            out.append(self.events.get())
        return out

    def close(self) -> None:
        self.closed = True  # the pipe stays open: a grab-failure test reopens this "device"


class Plug:
    """The /dev/input path: `device` is what opening it gives, None = nothing plugged in."""

    def __init__(self) -> None:
        self.device: PipeDevice | None = PipeDevice()

    def open(self, path: str) -> PipeDevice:
        if self.device is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return self.device


def piped_reader(plug: Plug) -> WedgeReader:
    return WedgeReader(
        "/dev/input/by-id/usb-reader-event-kbd",
        retry_initial_s=0.05,
        retry_max_s=0.1,
        open_device=plug.open,
    )


def test_device_loop_grabs_reads_and_reconnects(running) -> None:
    plug = Plug()
    with running(piped_reader(plug)) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        first = plug.device
        assert first is not None and first.grabbed
        first.type("0077740828\n")
        tap = r.next_tap()
        assert (tap.uid, tap.reader, tap.delivered_as) == ("0077740828", "wedge", "dec10")

        first.unplug()
        plug.device = None
        wait_until(lambda: r.status().state is ReaderState.ABSENT)
        assert first.closed

        plug.device = PipeDevice()
        wait_until(lambda: r.status().state is ReaderState.OK)
        plug.device.type("0473670148\n")
        assert r.next_tap().uid == "0473670148"


def test_grab_failure_is_an_error_and_retried(running) -> None:
    plug = Plug()
    assert plug.device is not None
    attempts = []

    def busy() -> None:
        attempts.append(1)
        raise OSError(errno.EBUSY, "Device or resource busy")

    plug.device.grab = busy  # type: ignore[method-assign]
    with running(piped_reader(plug)) as r:
        wait_until(lambda: r.status().state is ReaderState.ERROR)
        assert "grab" in r.status().detail
        wait_until(lambda: len(attempts) >= 2)


def test_missing_device_node(tmp_path: Path, running) -> None:
    reader = WedgeReader(str(tmp_path / "event99"), retry_initial_s=0.05, retry_max_s=0.1)
    with running(reader) as r:
        wait_until(lambda: r.status().state is ReaderState.ABSENT)
    assert reader.status().state is ReaderState.STOPPED


# -- a real virtual keyboard through uinput --------------------------------------------------


@pytest.fixture
def uinput_keyboard(tmp_path: Path) -> Iterator[tuple[object, Path]]:
    if not Path("/dev/uinput").exists():
        pytest.skip(
            "/dev/uinput is absent (no uinput kernel module here; `modprobe uinput` on a real "
            "machine); the evdev decoding is covered by the event-sequence tests above"
        )
    from evdev import UInput

    keys = sorted(set(KEY_FOR.values()) | {ecodes.KEY_KPENTER})
    try:
        keyboard = UInput({ecodes.EV_KEY: keys}, name="haolinju-test-wedge")
    except OSError as exc:
        pytest.skip(f"/dev/uinput is not usable here: {exc}")
    try:
        node = Path(keyboard.device.path)
    except Exception as exc:  # no udev / no /dev/input node for the new device
        keyboard.close()
        pytest.skip(f"uinput device created but no /dev/input node appeared: {exc}")
    link = tmp_path / "usb-reader-event-kbd"  # stands in for the /dev/input/by-id link
    link.symlink_to(node)
    yield keyboard, link
    with contextlib.suppress(OSError):  # the test may have unplugged it already
        keyboard.close()


def type_on(keyboard, text: str) -> None:
    for char in text:
        keyboard.write(ecodes.EV_KEY, KEY_FOR[char], 1)
        keyboard.syn()
        keyboard.write(ecodes.EV_KEY, KEY_FOR[char], 0)
        keyboard.syn()


def test_uinput_keyboard_is_grabbed_and_read(uinput_keyboard, running) -> None:
    from evdev import InputDevice

    keyboard, link = uinput_keyboard
    reader = WedgeReader(str(link), retry_initial_s=0.05, retry_max_s=0.2)
    with running(reader) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        other = InputDevice(str(link))  # e.g. the touchscreen UI's input stack
        try:
            with pytest.raises(OSError):
                other.grab()  # we hold it exclusively
        finally:
            other.close()
        type_on(keyboard, "0077740828\n")
        assert r.next_tap().uid == "0077740828"
        type_on(keyboard, "123")  # partial: the card moved away
        # Not a wait for a condition: the silence itself is the input (longer than the gap
        # that ends a number), so the next card must not be glued to these digits.
        time.sleep(reader.key_timeout_s + 0.1)
        type_on(keyboard, "0473670148\n")
        assert r.next_tap().uid == "0473670148"

        keyboard.close()  # unplugged
        wait_until(lambda: r.status().state is ReaderState.ABSENT)
