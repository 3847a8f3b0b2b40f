"""PcscReader against a real pcscd, with virtual cards presented to the vpcd reader."""

from __future__ import annotations

import signal

import pytest

from hardware.cards import ReaderState
from hardware.pcsc_reader import PcscReader, probe
from hardware.vpcd_card import READER_0, READER_1, VirtualCard
from tests.support.pcsc import PCSC_GROUP, Pcscd, no_card_present, take_away
from tests.support.wait import wait_until

# pcscd and the vpcd ports are global: one xdist worker runs every test that uses them.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(PCSC_GROUP), pytest.mark.pcsc]

UID_A = "04A23B1C"
UID_B = "04C7D2E2805D11"  # a 7-byte UID (MIFARE Ultralight / NTAG style)
UID_C = "DEADBEEF"


def fast_reader(**params) -> PcscReader:
    """Short backoff so recovery tests run in seconds, not the production 30 s ceiling."""
    return PcscReader(wait_timeout_s=0.2, retry_initial_s=0.1, retry_max_s=0.5, **params)


def test_watches_all_readers_and_reports_ok(vpcd: Pcscd, running) -> None:
    with running(fast_reader()) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        assert r.reader.readers() == [READER_0, READER_1]
        assert "2 reader(s)" in r.status().detail


def test_insert_remove_sequence_gives_one_tap_per_arrival(vpcd: Pcscd, running) -> None:
    with running(fast_reader()) as r:
        for uid in (UID_A, UID_B, UID_A):
            with VirtualCard(uid):
                tap = r.next_tap()
                assert (tap.uid, tap.reader, tap.delivered_as) == (uid, READER_0, "hex")
            r.no_tap(0.5)  # removal itself is not a tap


def test_card_held_five_seconds_is_one_tap(vpcd: Pcscd, running) -> None:
    with running(fast_reader()) as r, VirtualCard(UID_A) as card:
        assert r.next_tap().uid == UID_A
        r.no_tap(5.0)
        # pcscd kept checking the card all along; we asked for the UID only once.
        assert [a for a in card.apdus if a[:2] == b"\xff\xca"] == [bytes.fromhex("FFCA000000")]


def test_two_cards_in_quick_succession(vpcd: Pcscd, running) -> None:
    with running(fast_reader()) as r:
        card = VirtualCard(UID_A).insert()
        assert r.next_tap().uid == UID_A
        take_away(card)
        with VirtualCard(UID_C):
            assert r.next_tap().uid == UID_C


def test_card_swapped_while_the_tap_handler_is_busy(vpcd: Pcscd, running) -> None:
    """Removal and the next arrival both happen while on_tap blocks: still two taps."""
    first = VirtualCard(UID_A)
    second = VirtualCard(UID_C)

    def slow_consumer(tap) -> None:
        if tap.uid == UID_A:
            take_away(first)
            second.insert()
            # Stay busy until pcscd (400 ms presence poll) has seen C arrive.
            wait_until(lambda: not no_card_present(), "pcscd to see the second card")

    with running(fast_reader(), on_tap=slow_consumer) as r:
        first.insert()
        assert r.next_tap().uid == UID_A
        assert r.next_tap().uid == UID_C
        second.remove()


def test_cards_on_two_readers(vpcd: Pcscd, running) -> None:
    with running(fast_reader()) as r, VirtualCard(UID_A, slot=0), VirtualCard(UID_C, slot=1):
        taps: dict[str, str] = {}
        for _ in range(2):
            tap = r.next_tap()
            taps[tap.reader] = tap.uid
        assert taps == {READER_0: UID_A, READER_1: UID_C}


def test_reader_filter_ignores_other_readers(vpcd: Pcscd, running) -> None:
    with running(fast_reader(reader_filter="pcd 00 01")) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        assert r.reader.readers() == [READER_1]
        with VirtualCard(UID_A, slot=0):
            r.no_tap(1.0)
        with VirtualCard(UID_C, slot=1):
            assert r.next_tap().uid == UID_C


def test_filter_matching_nothing_is_absent(vpcd: Pcscd, running) -> None:
    with running(fast_reader(reader_filter="ACR122")) as r:
        wait_until(lambda: r.status().state is ReaderState.ABSENT)
        assert "ACR122" in r.status().detail
        assert READER_0 in r.status().detail  # tells the technician what *is* there


def test_error_status_word_gives_no_tap_and_a_status_detail(vpcd: Pcscd, running) -> None:
    with running(fast_reader()) as r:
        bad = VirtualCard(UID_A, sw="6A81").insert()
        wait_until(lambda: "6A81" in r.status().detail)
        r.no_tap(0.5)
        take_away(bad)
        assert r.status().state is ReaderState.OK
        with VirtualCard(UID_C):  # the reader still works for the next card
            assert r.next_tap().uid == UID_C


def test_pcscd_restart_mid_run_recovers(vpcd: Pcscd, running) -> None:
    vpcd.require_owned()
    with running(fast_reader()) as r:
        with VirtualCard(UID_A):
            assert r.next_tap().uid == UID_A
        vpcd.stop()
        wait_until(lambda: r.status().state is ReaderState.ERROR)
        assert "SCARD_E_NO_SERVICE" in r.status().detail or "pcscd" in r.status().detail
        vpcd.start()
        wait_until(lambda: r.status().state is ReaderState.OK, timeout=5)
        with VirtualCard(UID_C):
            assert r.next_tap().uid == UID_C


def test_pcscd_killed_with_a_card_on_the_reader(vpcd: Pcscd, running) -> None:
    vpcd.require_owned()
    with running(fast_reader()) as r:
        card = VirtualCard(UID_A).insert()
        assert r.next_tap().uid == UID_A
        vpcd.stop(signal.SIGKILL)
        card.remove()
        wait_until(lambda: r.status().state is ReaderState.ERROR)
        vpcd.start()
        with VirtualCard(UID_C):
            assert r.next_tap().uid == UID_C


def test_reader_appears_after_start(vpcd: Pcscd, running) -> None:
    """No reader at start (pcscd without readers) -> ABSENT; reader arrives -> reads cards."""
    vpcd.require_owned()
    vpcd.restart(readers=False)
    with running(fast_reader()) as r:
        wait_until(lambda: r.status().state is ReaderState.ABSENT)
        vpcd.restart(readers=True)
        wait_until(lambda: r.status().state is ReaderState.OK)
        with VirtualCard(UID_A):
            assert r.next_tap().uid == UID_A


def test_starts_before_pcscd(vpcd: Pcscd, running) -> None:
    vpcd.require_owned()
    vpcd.stop()
    with running(fast_reader()) as r:
        wait_until(lambda: r.status().state is ReaderState.ERROR)
        vpcd.start()
        with VirtualCard(UID_A):
            assert r.next_tap().uid == UID_A


def test_stop_is_prompt_and_reported(vpcd: Pcscd, running) -> None:
    reader = fast_reader()
    with running(reader) as r:
        wait_until(lambda: r.status().state is ReaderState.OK)
        r.stop.set()
        # A bound, not a speed figure: a reader blocked in SCardGetStatusChange without
        # watching `stop` would never end.
        r.thread.join(timeout=5)
        assert not r.thread.is_alive(), "the reader did not stop"
    assert reader.status().state is ReaderState.STOPPED


def test_probe_lists_readers_and_the_card_uid(vpcd: Pcscd) -> None:
    with VirtualCard(UID_B, slot=1):
        result = wait_until(lambda: (p := probe()).cards and p, timeout=15)
    assert result.service == "ok"
    assert result.readers == [READER_0, READER_1]
    assert result.cards == {READER_1: UID_B}


def test_probe_without_pcscd(vpcd: Pcscd) -> None:
    vpcd.require_owned()
    vpcd.stop()
    assert probe().service.startswith("pcscd not reachable")
