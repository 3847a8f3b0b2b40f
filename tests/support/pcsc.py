"""The card-reader test rig: a pcscd this test session owns, with the vpcd virtual reader,
and a reader's run loop in a thread with its taps in a queue."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hardware.cards import CardTap, ReaderStatus
from hardware.vpcd_card import (
    READER_0,
    READERS,
    VPCD_PORT,
    VPCD_READER_CONF,
    VirtualCard,
    pcscd_socket_alive,
    reader_names,
)
from tests.support.wait import wait_until

# pcscd's socket and vpcd's ports are fixed: the tests that use them share one xdist worker.
PCSC_GROUP = "pcsc"


def no_card_present(only: str | None = None) -> bool:
    """True when pcscd sees no card on any reader (or on reader `only`).

    pcscd notices a removed virtual card at its next presence check (~400 ms later).
    """
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return True
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        if hresult != scard.SCARD_S_SUCCESS:
            return True
        query = [(r, scard.SCARD_STATE_UNAWARE) for r in readers if only in (None, r)]
        hresult, states = scard.SCardGetStatusChange(context, 0, query)
        return hresult == scard.SCARD_S_SUCCESS and not any(
            event & scard.SCARD_STATE_PRESENT for _r, event, _atr in states
        )
    finally:
        scard.SCardReleaseContext(context)


def take_away(card: VirtualCard) -> None:
    """Remove `card` and wait until pcscd has seen its reader empty.

    Tests that present the next card at once need this: if pcscd happens to power the card
    down right after the removal, vpcd drops the dead connection and accepts the next queued
    one at the same presence check, so pcscd never sees the reader empty. A real reader always
    has a field gap between two cards, so this is a vpcd artefact, not a case to handle.
    """
    card.remove()
    # Polled: returns as soon as the reader is empty; the bound only matters on a starved CPU.
    wait_until(lambda: no_card_present(READERS[card.address[1] - VPCD_PORT]), timeout=15)


class Pcscd:
    """A pcscd this test session owns (or borrows, then `owned` is False)."""

    def __init__(self, workdir: Path, owned: bool) -> None:
        self.owned = owned
        self.vpcd_conf = workdir / "reader.conf.d"
        self.empty_conf = workdir / "empty.conf.d"
        self.vpcd_conf.mkdir(exist_ok=True)
        self.empty_conf.mkdir(exist_ok=True)
        (self.vpcd_conf / "vpcd").write_text(VPCD_READER_CONF)
        self.log_path = workdir / "pcscd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, readers: bool = True) -> None:
        """Start pcscd with the vpcd reader (or with no reader at all) and wait until ready."""
        assert self.owned and not self.running
        conf = self.vpcd_conf if readers else self.empty_conf
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                ["pcscd", "--foreground", "--info", "--config", str(conf)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        proc = self._proc
        wait_until(lambda: pcscd_socket_alive() or proc.poll() is not None, timeout=10, step=0.05)
        if self._proc.poll() is not None:
            log_tail = self.log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"pcscd exited with {self._proc.returncode}:\n{log_tail}")
        if readers:
            wait_until(lambda: READER_0 in reader_names(), timeout=10, step=0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.owned
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        wait_until(lambda: not pcscd_socket_alive(), timeout=5)

    def restart(self, readers: bool = True) -> None:
        self.stop()
        self.start(readers)

    def require_owned(self) -> None:
        if not self.owned:
            pytest.skip(
                "a pcscd not started by this test session is running; the tests that stop and "
                "restart pcscd need to own it (stop the system pcscd first)"
            )


class RunningReader:
    """A reader's `run` loop in a thread, its taps collected in a queue."""

    def __init__(self, reader: Any, on_tap: Callable[[CardTap], None] | None = None) -> None:
        self.reader = reader
        self.taps: queue.Queue[CardTap] = queue.Queue()
        self.stop = threading.Event()
        self._extra = on_tap
        self.thread = threading.Thread(target=reader.run, args=(self._on_tap, self.stop))

    def _on_tap(self, tap: CardTap) -> None:
        self.taps.put(tap)
        if self._extra is not None:
            self._extra(tap)

    def next_tap(self, timeout_s: float = 5.0) -> CardTap:
        try:
            return self.taps.get(timeout=timeout_s)
        except queue.Empty:
            pytest.fail(f"no tap within {timeout_s}s; reader status: {self.reader.status()}")

    def no_tap(self, within_s: float) -> None:
        try:
            tap = self.taps.get(timeout=within_s)
        except queue.Empty:
            return
        pytest.fail(f"unexpected tap {tap}")

    def status(self) -> ReaderStatus:
        return self.reader.status()

    def __enter__(self) -> RunningReader:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "reader thread did not stop"
