"""Build a card reader from plain configuration values: ``make_reader(kind, **params)``.

The composition root turns each ``card_readers:`` entry of config.yaml into a call like
``make_reader("serial", port="/dev/serial/by-id/usb-...", frame="stx_etx_hex")``. The
parameters are exactly the reader classes' constructor arguments (see docs/card-readers.md);
an unknown kind, an unknown parameter or a bad value raises ``ValueError`` with a message a
technician can act on. Imports of pyscard and evdev happen only for the kinds that need them,
so a laptop without pcsclite can still run the simulated reader.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from hardware.card_uid import uid_format
from hardware.cards import CardReader

KINDS = ("simulated", "pcsc", "wedge", "serial")


def _reader_class(kind: str) -> Callable[..., CardReader]:
    if kind == "simulated":
        from hardware.simulated import SimulatedReader

        return SimulatedReader
    if kind == "pcsc":
        from hardware.pcsc_reader import PcscReader

        return PcscReader
    if kind == "wedge":
        from hardware.wedge_reader import WedgeReader

        return WedgeReader
    if kind == "serial":
        from hardware.serial_reader import SerialReader

        return SerialReader
    raise ValueError(f"unknown card reader kind {kind!r}; use one of: {', '.join(KINDS)}")


def reader_parameters(kind: str) -> dict[str, Any]:
    """The configurable parameters of `kind` and their defaults (`inspect.Parameter.empty`
    for required ones), e.g. for `kiosk doctor` or config validation."""
    signature = inspect.signature(_reader_class(kind))
    return {
        name: p.default
        for name, p in signature.parameters.items()
        if not name.startswith("open_")  # test seams, not configuration
    }


def make_reader(kind: str, **params: Any) -> CardReader:
    """A reader of `kind` ("simulated", "pcsc", "wedge" or "serial") built from `params`."""
    cls = _reader_class(kind)
    accepted = reader_parameters(kind)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"card reader {kind!r}: unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    missing = [n for n, d in accepted.items() if d is inspect.Parameter.empty and n not in params]
    if missing:
        missing_text = ", ".join(missing)
        raise ValueError(f"card reader {kind!r}: missing required parameter(s) {missing_text}")
    if "delivered_as" in params:
        uid_format(params["delivered_as"])  # InvalidUidError (a ValueError) names valid forms
    try:
        return cls(**params)
    except ValueError as exc:
        raise ValueError(f"card reader {kind!r}: {exc}") from exc
