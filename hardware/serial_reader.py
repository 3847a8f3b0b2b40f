"""Serial card readers (RS232/RS485 modules, USB-serial adapters) through pyserial.

Two frame formats cover the modules sold to villages:

``ascii_line``
    The card number as ASCII hex or decimal digits, ended by CR and/or LF (``04A23B1C\\r\\n``).
    Spaces inside the line are removed. Anything else on a line (a banner, line noise) is
    dropped with a log line.

``stx_etx_hex``
    ``0x02`` + hex ASCII + ``0x03``, the framing of RDM6300-style 125 kHz modules:
    ``02 | 10 hex chars data | 2 hex chars checksum | 03``, e.g. ``\\x020A0012D68749\\x03``.
    With ``checksum="xor"`` (the default) the last byte of the payload must
    equal the XOR of the data bytes (0x0A ^ 0x00 ^ 0x12 ^ 0xD6 ^ 0x87 = 0x49 here) and is
    stripped; a frame that fails the check is dropped. With ``checksum="none"`` the whole
    payload is the card number. CR/LF/spaces inside a frame are ignored (some modules add them).

Resynchronisation: bytes outside a frame are skipped, an STX inside a frame starts the frame
again, and a frame or line longer than `MAX_FRAME` characters is dropped, so line noise or a
reader plugged in mid-frame costs at most one card read.

Many modules repeat the frame for as long as the card stays in the field; the same card number
arriving again within `repeat_holdoff_s` of its previous frame is the same tap.

A missing port (USB-serial adapter unplugged) is ABSENT, a port that cannot be opened is
ERROR; both are retried with backoff. Use a stable path (``/dev/serial/by-id/...``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from enum import StrEnum
from functools import reduce
from operator import xor
from pathlib import Path
from typing import TypeVar

import serial

from hardware.backoff import Backoff
from hardware.cards import CardTap, ReaderState, ReaderStatus, TapCallback

log = logging.getLogger(__name__)

STX, ETX = 0x02, 0x03
MAX_FRAME = 64
_CARD_TEXT = re.compile(r"[0-9A-F]+")
_INSIDE_WHITESPACE = re.compile(rb"[\s]")


_E = TypeVar("_E", bound=StrEnum)


class FrameFormat(StrEnum):
    ASCII_LINE = "ascii_line"
    STX_ETX_HEX = "stx_etx_hex"


class Checksum(StrEnum):
    XOR = "xor"
    NONE = "none"


def _choice(enum: type[_E], value: str, what: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(e.value for e in enum)
        raise ValueError(f"unknown {what} {value!r}; use one of: {valid}") from None


class FrameDecoder:
    """Bytes from the port in, card numbers (uppercase text) out; no I/O, easy to test."""

    def __init__(self, frame: str = "ascii_line", checksum: str = "xor") -> None:
        self.frame = _choice(FrameFormat, frame, "serial frame format")
        self.checksum = _choice(Checksum, checksum, "serial checksum")
        self._buffer = bytearray()
        self._in_frame = False  # stx_etx_hex: after STX; ascii_line: discarding an overlong line

    def feed(self, data: bytes) -> list[str]:
        cards: list[str] = []
        for byte in data:
            card = self._line(byte) if self.frame is FrameFormat.ASCII_LINE else self._stx(byte)
            if card:
                cards.append(card)
        return cards

    def _line(self, byte: int) -> str | None:
        if byte in b"\r\n":
            text, overlong = bytes(self._buffer), self._in_frame
            self._buffer.clear()
            self._in_frame = False
            return None if overlong else self._card_text(text)
        if self._in_frame:
            return None  # skipping the rest of an overlong line
        self._buffer.append(byte)
        if len(self._buffer) > MAX_FRAME:
            log.warning("serial: line longer than %d chars without CR/LF; dropped", MAX_FRAME)
            self._buffer.clear()
            self._in_frame = True
        return None

    def _stx(self, byte: int) -> str | None:
        if byte == STX:
            if self._in_frame and self._buffer:
                log.warning("serial: STX inside a frame; resynchronising (%r)", bytes(self._buffer))
            self._buffer.clear()
            self._in_frame = True
            return None
        if not self._in_frame:
            return None  # garbage between frames
        if byte == ETX:
            payload = bytes(self._buffer)
            self._buffer.clear()
            self._in_frame = False
            return self._stx_payload(payload)
        self._buffer.append(byte)
        if len(self._buffer) > MAX_FRAME:
            log.warning("serial: frame longer than %d chars without ETX; dropped", MAX_FRAME)
            self._buffer.clear()
            self._in_frame = False
        return None

    def _stx_payload(self, payload: bytes) -> str | None:
        text = self._card_text(payload)
        if text is None or self.checksum is Checksum.NONE:
            return text
        if len(text) % 2 or len(text) < 4:
            log.warning("serial: frame %r too short or odd for an XOR checksum; dropped", text)
            return None
        data = bytes.fromhex(text[:-2])
        expected = reduce(xor, data, 0)
        if expected != int(text[-2:], 16):
            log.warning(
                "serial: frame %s checksum %s, expected %02X; dropped", text, text[-2:], expected
            )
            return None
        return text[:-2]

    @staticmethod
    def _card_text(raw: bytes) -> str | None:
        text = _INSIDE_WHITESPACE.sub(b"", raw).decode("ascii", "replace").upper()
        if not text:
            return None
        if not _CARD_TEXT.fullmatch(text):
            log.warning("serial: not a card number: %r; dropped", raw)
            return None
        return text


class SerialReader:
    def __init__(
        self,
        port: str,
        name: str = "serial",
        baudrate: int = 9600,
        frame: str = "ascii_line",
        checksum: str = "xor",
        delivered_as: str = "hex",
        repeat_holdoff_s: float = 1.0,
        read_timeout_s: float = 0.2,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.port = port
        self.name = name
        self.baudrate = baudrate
        self.frame = _choice(FrameFormat, frame, "serial frame format")
        self.checksum = _choice(Checksum, checksum, "serial checksum")
        self.delivered_as = delivered_as
        self.repeat_holdoff_s = repeat_holdoff_s
        self.read_timeout_s = read_timeout_s
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._status = ReaderStatus(ReaderState.STOPPED, "not started")
        self._last: tuple[str, float] | None = None  # card number, monotonic of its last frame

    def status(self) -> ReaderStatus:
        return self._status

    def run(self, on_tap: TapCallback, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                port = serial.Serial(
                    self.port, self.baudrate, timeout=self.read_timeout_s, exclusive=True
                )
            except (serial.SerialException, OSError, ValueError) as exc:
                self._retry(stop, f"cannot open {self.port}: {exc}")
                continue
            self._backoff.reset()
            self._status = ReaderStatus(
                ReaderState.OK, f"{self.port} open at {self.baudrate} baud, {self.frame} frames"
            )
            log.info("%s: %s", self.name, self._status.detail)
            try:
                self._read_loop(port, on_tap, stop)
                lost = None
            except (serial.SerialException, OSError) as exc:
                lost = exc
            finally:
                port.close()
            if lost is not None:  # retry only after closing, so a replug finds it free
                log.warning("%s: %s lost: %s", self.name, self.port, lost)
                self._retry(stop, f"{self.port} lost: {lost}")
        self._status = ReaderStatus(ReaderState.STOPPED, "stopped")

    def _retry(self, stop: threading.Event, why: str) -> None:
        state = ReaderState.ERROR if Path(self.port).exists() else ReaderState.ABSENT
        delay = self._backoff.next_delay()
        self._status = ReaderStatus(state, f"{why}; retry in {delay:.1f}s")
        stop.wait(delay)

    def _read_loop(self, port: serial.Serial, on_tap: TapCallback, stop: threading.Event) -> None:
        decoder = FrameDecoder(self.frame, self.checksum)
        while not stop.is_set():
            # Blocks up to read_timeout_s; returns as soon as bytes arrive.
            data = port.read(max(1, port.in_waiting))
            if not data:
                continue
            now = time.monotonic()
            for card in decoder.feed(data):
                self._deliver(card, now, on_tap)

    def _deliver(self, card: str, now: float, on_tap: TapCallback) -> None:
        last = self._last
        self._last = (card, now)
        if last is not None and last[0] == card and now - last[1] < self.repeat_holdoff_s:
            return  # the module repeating a card that is still in the field
        log.info("%s: card %s", self.name, card)
        try:
            on_tap(CardTap(uid=card, reader=self.name, delivered_as=self.delivered_as))
        except Exception:  # a failing consumer must not kill the reader thread
            log.exception("tap handler failed for card %s on %s", card, self.name)
