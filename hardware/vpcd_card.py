"""A virtual contactless card for pcscd's "Virtual PCD" reader (vsmartcard-vpcd).

The vpcd driver inside pcscd listens on TCP port 35963 (slot 0, reader "Virtual PCD 00 00") and
35964 (slot 1, "Virtual PCD 00 01"); a card is a TCP *client* of it. Every message in either
direction is a 2-byte big-endian length followed by that many bytes. From pcscd to the card:

* one byte = control code: 0 power off, 1 power on, 2 reset (no answer to these), 4 get ATR
  (answer: the ATR);
* more bytes = a command APDU (answer: response APDU, data + SW1 SW2).

pcscd asks for the ATR every ~400 ms to check that the card is still there (vicc_present in
virtualsmartcard/src/vpcd/vpcd.c); when the connection is closed that read fails, vpcd ejects
the card and pcscd reports the reader empty. So presenting a card = connecting, removing it =
closing the socket.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

VPCD_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
# The PC/SC part 3 ATR of a MIFARE Classic 1K seen through a contactless reader.
MIFARE_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
GET_UID = bytes.fromhex("FFCA0000")

Responder = Callable[[bytes], bytes]

# The pcscd side of the virtual stack, shared by the test fixtures and the card benchmark.
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_READER_CONF = f"""\
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      {VPCD_DRIVER}
CHANNELID    0x8C7B
"""
READER_0 = "Virtual PCD 00 00"
READER_1 = "Virtual PCD 00 01"
READERS = (READER_0, READER_1)


def pcscd_socket_alive() -> bool:
    """Does a pcscd answer on its socket?"""
    if not PCSCD_SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def reader_names() -> list[str]:
    """The readers pcscd knows right now ([] when it does not answer)."""
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return []
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        return list(readers) if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


# Cards currently presented, so a test fixture can take away whatever a failed test left.
_inserted: set[VirtualCard] = set()


def remove_all_cards() -> None:
    for card in list(_inserted):
        card.remove()


class VirtualCard:
    """A card with `uid` on vpcd slot `slot`; answers ``FF CA 00 00 00`` with UID + `sw`."""

    def __init__(
        self,
        uid: str,
        slot: int = 0,
        sw: str = "9000",
        host: str = "127.0.0.1",
        responder: Responder | None = None,
    ) -> None:
        self.uid = bytes.fromhex(uid)
        self.sw = bytes.fromhex(sw)
        self.address = (host, VPCD_PORT + slot)
        self.responder = responder
        self.apdus: list[bytes] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def answer(self, apdu: bytes) -> bytes:
        if self.responder is not None:
            return self.responder(apdu)
        if apdu[:4] == GET_UID:
            return (self.uid if self.sw == b"\x90\x00" else b"") + self.sw
        return b"\x6d\x00"  # instruction not supported

    def insert(self, timeout_s: float = 5.0) -> VirtualCard:
        """Present the card: connect to vpcd (retrying while pcscd starts)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                sock = socket.create_connection(self.address, timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(None)
        self._sock = sock
        _inserted.add(self)
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()
        return self

    def remove(self) -> None:
        """Take the card away: close the connection; vpcd notices at its next presence check."""
        sock, self._sock = self._sock, None
        _inserted.discard(self)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> VirtualCard:
        return self.insert()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                message = _recv_exact(sock, length) if length else b""
                if message is None:
                    return
                if length == 1:
                    if message[0] == CTRL_ATR:
                        _send(sock, MIFARE_ATR)
                    continue  # power on/off/reset are not answered
                self.apdus.append(message)
                _send(sock, self.answer(message))
        except OSError:
            return  # removed (socket closed under us) or pcscd went away


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)
