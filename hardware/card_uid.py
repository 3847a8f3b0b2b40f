"""Card-number normalisation: the ONE place that converts between the forms of a card UID.

Readers deliver a card number in one form, the county roster holds it in another, and the
number printed on the card may be a third. Every conversion goes through the UID *bytes in
reader order* (the order a PC/SC reader returns to ``FF CA 00 00 00``, i.e. the order of the
anticollision frame, byte 0 first):

    reader text --parse_reader_uid(text, delivered_as)--> bytes --to_roster_form(fmt)--> text

The forms (``UidFormat``), with the worked example UID bytes ``04 A2 3B 1C``:

==================  ============  =============================================================
form                example       meaning
==================  ============  =============================================================
``hex``             ``04A23B1C``  the bytes as read, uppercase hex, no separators
``hex_reversed``    ``1C3BA204``  the bytes reversed (readers that print little-endian)
``dec10``           ``0077740828``  the 4 bytes as a big-endian integer, 10 digits zero-padded
``dec10_reversed``  ``0473670148``  the same after reversing the bytes (most 免驱 USB readers)
``wiegand26``       ``16215132``  "3+5": facility code (3 digits) + card number (5 digits)
==================  ============  =============================================================

Wiegand-26 carries 24 bits of the card number: an 8-bit facility code and a 16-bit card
number. Like the cheap readers and the numbers printed on 125 kHz cards ("162,15132"), we take
the *low three bytes of the UID in reader order*: for ``04 A2 3B 1C`` the facility code is
``0xA2`` = 162 and the card number ``0x3B1C`` = 15132, giving ``16215132``. Byte 0 is lost, so
a Wiegand number can only be converted to Wiegand again, never back to a full UID.

Lengths: ISO 14443 UIDs have 4, 7 or 10 bytes; 125 kHz EM4100 IDs (RDM6300-style serial
modules) have 5 bytes, the first being a version/customer byte that is not part of the printed
number, so the decimal and Wiegand forms of a 5-byte ID use its low 4 (resp. 3) bytes. 8-byte
IDs (ISO 15693, FeliCa) are accepted in the hex forms. The decimal and Wiegand forms are only
defined for 4-byte UIDs (and the 5-byte EM case); anything else raises ``InvalidUidError``.
"""

from __future__ import annotations

import re
from enum import StrEnum


class UidFormat(StrEnum):
    HEX = "hex"
    HEX_REVERSED = "hex_reversed"
    DEC10 = "dec10"
    DEC10_REVERSED = "dec10_reversed"
    WIEGAND26 = "wiegand26"


class InvalidUidError(ValueError):
    """A card number that cannot be read or converted; the message says why."""


InvalidUid = InvalidUidError  # the short name used in the issue discussion


# Byte lengths accepted as a card identifier (see the module docstring).
HEX_LENGTHS = frozenset({4, 5, 7, 8, 10})
EM4100_LENGTH = 5
WIEGAND_LENGTH = 3

_SEPARATORS = re.compile(r"[\s:\-]")
_HEX = re.compile(r"[0-9A-F]+")
_WIEGAND = re.compile(r"(\d{3})[\s,.:/\-]?(\d{5})")


def uid_format(value: str | UidFormat) -> UidFormat:
    """`value` as a UidFormat, with an error that lists the valid names."""
    try:
        return UidFormat(value)
    except ValueError:
        valid = ", ".join(f.value for f in UidFormat)
        raise InvalidUidError(f"unknown card number form {value!r}; use one of: {valid}") from None


def canonical_hex(text: str) -> str:
    """Lenient hex: strip spaces, colons and dashes, uppercase, validate.

    >>> canonical_hex("04:a2:3b:1c")
    '04A23B1C'
    >>> canonical_hex("04 A2 3B 1C 80 5D 11")
    '04A23B1C805D11'
    """
    cleaned = _SEPARATORS.sub("", text).upper()
    if not cleaned:
        raise InvalidUidError("empty card number")
    if not _HEX.fullmatch(cleaned):
        raise InvalidUidError(f"card number {text!r} is not hexadecimal")
    if len(cleaned) % 2:
        raise InvalidUidError(f"card number {text!r} has an odd number of hex digits")
    if len(cleaned) // 2 not in HEX_LENGTHS:
        raise InvalidUidError(
            f"card number {text!r} has {len(cleaned) // 2} bytes; "
            f"a UID has {', '.join(str(n) for n in sorted(HEX_LENGTHS))} bytes"
        )
    return cleaned


def _parse_decimal(text: str) -> bytes:
    digits = text.strip()
    # Readers and spreadsheets drop leading zeros, so 1 to 10 digits are all valid.
    if not digits.isascii() or not digits.isdigit() or len(digits) > 10:
        raise InvalidUidError(f"card number {text!r} is not a decimal number of at most 10 digits")
    value = int(digits)
    if value >= 1 << 32:
        raise InvalidUidError(f"card number {text!r} is larger than a 4-byte UID (4294967295)")
    return value.to_bytes(4, "big")


def _parse_wiegand(text: str) -> bytes:
    match = _WIEGAND.fullmatch(text.strip())
    if not match:
        raise InvalidUidError(
            f"card number {text!r} is not a Wiegand-26 number (8 digits: 3-digit facility "
            "code + 5-digit card number, e.g. 16215132 or 162,15132)"
        )
    facility, number = int(match[1]), int(match[2])
    if facility > 0xFF:
        raise InvalidUidError(f"card number {text!r}: facility code {facility} is above 255")
    if number > 0xFFFF:
        raise InvalidUidError(f"card number {text!r}: card number {number} is above 65535")
    return bytes([facility]) + number.to_bytes(2, "big")


def parse_reader_uid(text: str, delivered_as: str | UidFormat) -> bytes:
    """The UID bytes, in reader order, of a card number a reader delivered as `delivered_as`.

    >>> parse_reader_uid("04A23B1C", "hex").hex().upper()
    '04A23B1C'
    >>> parse_reader_uid("1C3BA204", "hex_reversed").hex().upper()
    '04A23B1C'
    >>> parse_reader_uid("0077740828", "dec10").hex().upper()
    '04A23B1C'
    >>> parse_reader_uid("473670148", "dec10_reversed").hex().upper()
    '04A23B1C'

    A Wiegand-26 number yields only the 3 bytes it carries:

    >>> parse_reader_uid("162,15132", "wiegand26").hex().upper()
    'A23B1C'
    """
    fmt = uid_format(delivered_as)
    if fmt is UidFormat.HEX:
        return bytes.fromhex(canonical_hex(text))
    if fmt is UidFormat.HEX_REVERSED:
        return bytes.fromhex(canonical_hex(text))[::-1]
    if fmt is UidFormat.DEC10:
        return _parse_decimal(text)
    if fmt is UidFormat.DEC10_REVERSED:
        return _parse_decimal(text)[::-1]
    return _parse_wiegand(text)


def _four_bytes(uid: bytes, fmt: UidFormat) -> bytes:
    if len(uid) == 4:
        return uid
    if len(uid) == EM4100_LENGTH and fmt is UidFormat.DEC10:
        return uid[1:]  # EM4100: byte 0 is the version byte, not part of the printed number
    raise InvalidUidError(
        f"card {uid.hex().upper()} has a {len(uid)}-byte UID; the {fmt.value} form is only "
        "defined for 4-byte UIDs (use hex or hex_reversed in the roster)"
    )


def to_roster_form(uid: bytes, fmt: str | UidFormat) -> str:
    """The text of UID bytes (reader order) in form `fmt`.

    >>> uid = bytes.fromhex("04A23B1C")
    >>> [to_roster_form(uid, f) for f in UidFormat]
    ['04A23B1C', '1C3BA204', '0077740828', '0473670148', '16215132']
    """
    fmt = uid_format(fmt)
    if len(uid) == WIEGAND_LENGTH:
        # Only a parsed Wiegand number is this short: byte 0 of the UID is unknown.
        if fmt is not UidFormat.WIEGAND26:
            raise InvalidUidError(
                f"a Wiegand-26 number ({to_roster_form(uid, UidFormat.WIEGAND26)}) carries "
                f"only 24 bits of the UID and cannot be converted to {fmt.value}"
            )
    elif len(uid) not in HEX_LENGTHS:
        raise InvalidUidError(f"a UID has 4, 5, 7, 8 or 10 bytes, not {len(uid)}")
    if fmt is UidFormat.HEX:
        return uid.hex().upper()
    if fmt is UidFormat.HEX_REVERSED:
        return uid[::-1].hex().upper()
    if fmt is UidFormat.DEC10:
        return f"{int.from_bytes(_four_bytes(uid, fmt), 'big'):010d}"
    if fmt is UidFormat.DEC10_REVERSED:
        return f"{int.from_bytes(_four_bytes(uid, fmt)[::-1], 'big'):010d}"
    if len(uid) not in (WIEGAND_LENGTH, 4, EM4100_LENGTH):
        raise InvalidUidError(
            f"card {uid.hex().upper()} has a {len(uid)}-byte UID; the wiegand26 form is only "
            "defined for 4-byte UIDs and 5-byte EM4100 IDs"
        )
    low = uid[-3:]  # the low three bytes in reader order, as cheap readers print them
    return f"{low[0]:03d}{int.from_bytes(low[1:], 'big'):05d}"


def normalise(raw: str, delivered_as: str | UidFormat, roster_form: str | UidFormat) -> str:
    """Convert a card number from the reader's form to the roster's form.

    >>> normalise("04A23B1C", "hex", "dec10_reversed")
    '0473670148'
    >>> normalise("0473670148", "dec10_reversed", "hex")
    '04A23B1C'
    >>> normalise("04 a2 3b 1c", "hex", "wiegand26")
    '16215132'
    >>> normalise("zz", "hex", "hex")
    Traceback (most recent call last):
    ...
    hardware.card_uid.InvalidUidError: card number 'zz' is not hexadecimal
    """
    return to_roster_form(parse_reader_uid(raw, delivered_as), roster_form)
