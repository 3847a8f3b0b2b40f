"""UID normalisation: every form, both directions, the worked examples, and the errors."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hardware.card_uid
from hardware.card_uid import (
    InvalidUidError,
    UidFormat,
    canonical_hex,
    normalise,
    parse_reader_uid,
    to_roster_form,
)

# The worked example of docs/card-readers.md: UID bytes 04 A2 3B 1C.
EXAMPLE = bytes.fromhex("04A23B1C")
EXAMPLE_FORMS = {
    UidFormat.HEX: "04A23B1C",
    UidFormat.HEX_REVERSED: "1C3BA204",
    UidFormat.DEC10: "0077740828",
    UidFormat.DEC10_REVERSED: "0473670148",
    UidFormat.WIEGAND26: "16215132",
}


def test_docstring_examples() -> None:
    result = doctest.testmod(hardware.card_uid, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10
    assert result.failed == 0


@pytest.mark.parametrize(("fmt", "text"), EXAMPLE_FORMS.items())
def test_worked_example_in_every_form(fmt: UidFormat, text: str) -> None:
    assert to_roster_form(EXAMPLE, fmt) == text
    if fmt is not UidFormat.WIEGAND26:
        assert parse_reader_uid(text, fmt) == EXAMPLE


@pytest.mark.parametrize("src", [f for f in UidFormat if f is not UidFormat.WIEGAND26])
@pytest.mark.parametrize("dst", list(UidFormat))
def test_every_conversion_of_the_example(src: UidFormat, dst: UidFormat) -> None:
    assert normalise(EXAMPLE_FORMS[src], src, dst) == EXAMPLE_FORMS[dst]


def test_wiegand_to_wiegand_with_separators() -> None:
    for text in ("16215132", "162,15132", "162 15132", "162-15132"):
        assert normalise(text, "wiegand26", "wiegand26") == "16215132"


def test_wiegand_cannot_become_a_full_uid() -> None:
    with pytest.raises(InvalidUidError, match="only 24 bits"):
        normalise("16215132", "wiegand26", "hex")


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("", "hex", "empty"),
        ("04A23B1G", "hex", "not hexadecimal"),
        ("04A23B1", "hex", "odd number"),
        ("04A23B", "hex", "3 bytes"),
        ("12345678901", "dec10", "at most 10 digits"),
        ("4294967296", "dec10", "larger than a 4-byte UID"),
        ("-1", "dec10", "decimal"),
        ("１２３", "dec10", "decimal"),  # full-width digits from an IME are not card numbers
        ("1621513", "wiegand26", "Wiegand-26"),
        ("25615132", "wiegand26", "facility code 256"),
        ("16299999", "wiegand26", "card number 99999"),
        ("04A23B1C", "hexadecimal", "unknown card number form"),
    ],
)
def test_garbage_is_rejected_with_a_clear_message(text: str, fmt: str, message: str) -> None:
    with pytest.raises(InvalidUidError, match=message):
        normalise(text, fmt, "hex")


def test_invalid_uid_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalise("zz", "hex", "hex")


def test_seven_byte_uid() -> None:
    uid = "04C7D2E2805D11"
    assert normalise(uid, "hex", "hex_reversed") == "115D80E2D2C704"
    assert normalise("115D80E2D2C704", "hex_reversed", "hex") == uid
    for fmt in ("dec10", "dec10_reversed", "wiegand26"):
        with pytest.raises(InvalidUidError, match="7-byte UID"):
            normalise(uid, "hex", fmt)


def test_five_byte_em4100_id() -> None:
    # RDM6300 frame data 0A 00 12 D6 87: version byte 0A, card number 00 12 D6 87.
    assert normalise("0A0012D687", "hex", "dec10") == "0001234567"
    assert normalise("0A0012D687", "hex", "wiegand26") == "01854919"
    with pytest.raises(InvalidUidError, match="5-byte"):
        normalise("0A0012D687", "hex", "dec10_reversed")


def test_decimal_without_leading_zeros() -> None:
    assert normalise("77740828", "dec10", "hex") == "04A23B1C"


def test_canonical_hex_is_lenient_about_separators() -> None:
    assert canonical_hex(" 04:a2-3b 1c ") == "04A23B1C"


@given(st.binary(min_size=4, max_size=4))
def test_four_byte_round_trips(uid: bytes) -> None:
    for fmt in (f for f in UidFormat if f is not UidFormat.WIEGAND26):
        assert parse_reader_uid(to_roster_form(uid, fmt), fmt) == uid
    wiegand = to_roster_form(uid, UidFormat.WIEGAND26)
    assert len(wiegand) == 8
    assert parse_reader_uid(wiegand, UidFormat.WIEGAND26) == uid[1:]


@given(st.sampled_from([4, 5, 7, 8, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_hex_round_trips_for_all_lengths(uid: bytes) -> None:
    assert parse_reader_uid(to_roster_form(uid, "hex"), "hex") == uid
    assert parse_reader_uid(to_roster_form(uid, "hex_reversed"), "hex_reversed") == uid
