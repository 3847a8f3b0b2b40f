"""make_reader: the plain-parameter factory the composition root calls from config.yaml."""

from __future__ import annotations

import inspect
import threading

import pytest

from hardware.cards import CardReader, CardTap, ReaderState
from hardware.pcsc_reader import PcscReader
from hardware.readers import KINDS, make_reader, reader_parameters
from hardware.serial_reader import SerialReader
from hardware.simulated import SimulatedReader
from hardware.wedge_reader import WedgeReader


def test_every_kind_builds_a_card_reader() -> None:
    built = {
        "simulated": make_reader("simulated"),
        "pcsc": make_reader("pcsc", reader_filter="ACR122"),
        "wedge": make_reader("wedge", device="/dev/input/by-id/x-event-kbd"),
        "serial": make_reader("serial", port="/dev/ttyUSB0", frame="stx_etx_hex"),
    }
    assert set(built) == set(KINDS)
    types = {"simulated": SimulatedReader, "pcsc": PcscReader, "wedge": WedgeReader}
    types["serial"] = SerialReader
    for kind, reader in built.items():
        assert isinstance(reader, types[kind])
        assert isinstance(reader, CardReader)
        assert reader.status().state is ReaderState.STOPPED


def test_parameters_are_documented_names() -> None:
    assert reader_parameters("pcsc") == {
        "name": "pcsc",
        "reader_filter": "",
        "wait_timeout_s": 0.5,
        "retry_initial_s": 0.5,
        "retry_max_s": 30.0,
    }
    assert reader_parameters("wedge")["device"] is inspect.Parameter.empty
    assert "open_device" not in reader_parameters("wedge")
    assert reader_parameters("serial")["frame"] == "ascii_line"


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("nfc", {}, "unknown card reader kind 'nfc'"),
        ("pcsc", {"reader": "ACR"}, "unknown parameter.*reader.*accepted: name, reader_filter"),
        ("wedge", {}, "missing required parameter.*device"),
        ("serial", {"port": "/dev/ttyS0", "frame": "wiegand"}, "frame format 'wiegand'"),
        ("serial", {"port": "/dev/ttyS0", "checksum": "crc"}, "checksum 'crc'"),
        ("wedge", {"device": "/dev/x", "delivered_as": "decimal"}, "form 'decimal'"),
        ("pcsc", {"retry_initial_s": 0}, "backoff"),
    ],
)
def test_bad_configuration_is_a_clear_value_error(kind: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_reader(kind, **params)


def test_simulated_reader_delivers_taps_with_its_form() -> None:
    reader = make_reader("simulated", name="demo", delivered_as="dec10")
    taps: list[CardTap] = []
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(taps.append, stop))
    thread.start()
    reader.tap("0077740828")  # type: ignore[attr-defined]
    deadline = threading.Event()
    for _ in range(50):
        if taps:
            break
        deadline.wait(0.02)
    stop.set()
    thread.join(timeout=2)
    assert [(t.uid, t.reader, t.delivered_as) for t in taps] == [("0077740828", "demo", "dec10")]
