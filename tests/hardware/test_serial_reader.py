"""SerialReader: frame decoding as a unit, and the real pyserial path over a pseudo-terminal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hardware.cards import ReaderState
from hardware.serial_reader import FrameDecoder, SerialReader
from tests.support.wait import wait_until

RDM6300_FRAME = b"\x020A0012D68749\x03"  # checksum 49 = 0A^00^12^D6^87


# -- frame decoding --------------------------------------------------------------------------


def test_ascii_lines_with_any_line_ending() -> None:
    decoder = FrameDecoder("ascii_line")
    assert decoder.feed(b"04a23b1c\r\n0077740828\n\r1C 3B A2 04\r") == [
        "04A23B1C",
        "0077740828",
        "1C3BA204",
    ]


def test_ascii_line_split_across_reads() -> None:
    decoder = FrameDecoder("ascii_line")
    assert decoder.feed(b"04A2") == []
    assert decoder.feed(b"3B1C") == []
    assert decoder.feed(b"\r\n") == ["04A23B1C"]


def test_ascii_garbage_lines_are_dropped() -> None:
    decoder = FrameDecoder("ascii_line")
    assert decoder.feed(b"READER V1.2 READY\r\n\xff\xfe\r\n04A23B1C\r\n") == ["04A23B1C"]


def test_ascii_overlong_line_is_dropped_and_the_next_line_read() -> None:
    decoder = FrameDecoder("ascii_line")
    assert decoder.feed(b"1" * 200 + b"\r\n0473670148\r\n") == ["0473670148"]


def test_stx_etx_with_xor_checksum() -> None:
    assert FrameDecoder("stx_etx_hex").feed(RDM6300_FRAME) == ["0A0012D687"]


def test_stx_etx_bad_checksum_is_dropped() -> None:
    assert FrameDecoder("stx_etx_hex").feed(b"\x020A0012D68700\x03") == []


def test_stx_etx_without_checksum() -> None:
    decoder = FrameDecoder("stx_etx_hex", checksum="none")
    assert decoder.feed(b"\x0204A23B1C\x03") == ["04A23B1C"]


def test_stx_etx_resyncs_after_garbage_and_a_truncated_frame() -> None:
    decoder = FrameDecoder("stx_etx_hex")
    noise = b"\x00\xffzz\x03\x020A00"  # junk, a stray ETX, then a frame cut short by a new STX
    assert decoder.feed(noise + RDM6300_FRAME + b"\r\n" + RDM6300_FRAME) == ["0A0012D687"] * 2


def test_stx_etx_ignores_line_breaks_inside_the_frame() -> None:
    assert FrameDecoder("stx_etx_hex").feed(b"\x020A0012D68749\r\n\x03") == ["0A0012D687"]


def test_stx_etx_frame_byte_by_byte() -> None:
    decoder = FrameDecoder("stx_etx_hex")
    out = [card for byte in RDM6300_FRAME for card in decoder.feed(bytes([byte]))]
    assert out == ["0A0012D687"]


def test_stx_etx_non_hex_payload_is_dropped() -> None:
    assert FrameDecoder("stx_etx_hex").feed(b"\x02HELLO WORLD\x03" + RDM6300_FRAME) == [
        "0A0012D687"
    ]


def test_unknown_frame_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="wiegand"):
        FrameDecoder("wiegand")


# -- the real pyserial path over a pty -------------------------------------------------------


class FakePort:
    """A pty whose slave is reached through a stable symlink, like /dev/serial/by-id/...

    `unplug` closes the master (the reader's reads fail) and removes the link (the path is
    gone, as when a USB-serial adapter is pulled); `plug` makes a new pty behind the same link.
    """

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        self.master, slave = os.openpty()
        target = os.ttyname(slave)
        os.close(slave)  # the pty lives as long as the master is open
        self.link.symlink_to(target)

    def unplug(self) -> None:
        self.link.unlink()
        os.close(self.master)
        self.master = -1

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
        self.link.unlink(missing_ok=True)


@pytest.fixture
def port(tmp_path: Path):
    fake = FakePort(tmp_path / "ttyCARD")
    yield fake
    fake.close()


def fast_serial(port: FakePort, **params) -> SerialReader:
    return SerialReader(
        str(port.link), read_timeout_s=0.05, retry_initial_s=0.05, retry_max_s=0.2, **params
    )


def test_reads_ascii_lines_through_pyserial(port: FakePort, running) -> None:
    with running(fast_serial(port, delivered_as="dec10")) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        port.write(b"0077740828\r\n")
        tap = r.next_tap()
        assert (tap.uid, tap.reader, tap.delivered_as) == ("0077740828", "serial", "dec10")
        port.write(b"\x07noise\r\n0473670148\r\n")
        assert r.next_tap().uid == "0473670148"


def test_repeated_frames_of_a_held_card_are_one_tap(port: FakePort, running) -> None:
    reader = fast_serial(port, frame="stx_etx_hex", repeat_holdoff_s=0.5)
    with running(reader) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        port.write(RDM6300_FRAME)
        assert r.next_tap().uid == "0A0012D687"
        for _ in range(4):  # the module repeats the frame every 200 ms while the card is held
            port.write(RDM6300_FRAME)
            r.no_tap(0.2)
        r.no_tap(0.7)  # card taken away: silence longer than the holdoff
        port.write(RDM6300_FRAME)  # presented again
        assert r.next_tap().uid == "0A0012D687"


def test_port_vanishes_and_comes_back(port: FakePort, running) -> None:
    with running(fast_serial(port)) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        port.write(b"04A23B1C\r\n")
        assert r.next_tap().uid == "04A23B1C"
        port.unplug()
        wait_until(lambda: r.status().state is ReaderState.ABSENT)
        assert str(port.link) in r.status().detail
        port.plug()
        wait_until(lambda: r.status().state is ReaderState.OK)
        port.write(b"DEADBEEF\r\n")
        assert r.next_tap().uid == "DEADBEEF"


def test_missing_port_at_start_is_absent_not_fatal(tmp_path: Path, running) -> None:
    reader = SerialReader(str(tmp_path / "nothing"), retry_initial_s=0.05, retry_max_s=0.1)
    with running(reader) as r:
        wait_until(lambda: r.status().state is ReaderState.ABSENT)
        assert r.thread.is_alive()
    assert reader.status().state is ReaderState.STOPPED


def test_unopenable_port_is_an_error(tmp_path: Path, running) -> None:
    not_a_tty = tmp_path / "plain-file"
    not_a_tty.write_text("")
    reader = SerialReader(str(not_a_tty), retry_initial_s=0.05, retry_max_s=0.1)
    with running(reader) as r:
        wait_until(lambda: r.status().state is ReaderState.ERROR)
