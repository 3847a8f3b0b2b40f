"""Fixtures for the card-reader tests: a real pcscd with the vpcd virtual reader.

The session fixture `pcscd` starts its own ``pcscd --foreground`` with a private reader.conf.d
(only the vpcd reader) so the tests can restart it; if a pcscd not started by us is already
running, the tests use it and the ones that must restart pcscd skip. Without pcscd or the vpcd
driver (Debian packages pcscd and vsmartcard-vpcd) the PC/SC tests skip with that reason.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hardware.cards import CardTap, ReaderStatus
from hardware.vpcd_card import (
    PCSCD_SOCKET,
    READER_0,
    READERS,
    VPCD_DRIVER,
    VPCD_PORT,
    VPCD_READER_CONF,
    VirtualCard,
    pcscd_socket_alive,
    reader_names,
    remove_all_cards,
)


def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0, step_s: float = 0.02):
    """Poll `predicate` until it is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s: {predicate}")
        time.sleep(step_s)


def _no_card_present(only: str | None = None) -> bool:
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
    wait_until(lambda: _no_card_present(READERS[card.address[1] - VPCD_PORT]), 3)


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
        wait_until(lambda: pcscd_socket_alive() or self._proc.poll() is not None, 10, 0.05)
        if self._proc.poll() is not None:
            log_tail = self.log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"pcscd exited with {self._proc.returncode}:\n{log_tail}")
        if readers:
            wait_until(lambda: READER_0 in reader_names(), 10, 0.05)

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
        wait_until(lambda: not pcscd_socket_alive(), 5)

    def restart(self, readers: bool = True) -> None:
        self.stop()
        self.start(readers)

    def require_owned(self) -> None:
        if not self.owned:
            pytest.skip(
                "a pcscd not started by this test session is running; the tests that stop and "
                "restart pcscd need to own it (stop the system pcscd first)"
            )


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    if shutil.which("pcscd") is None:
        pytest.skip("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
    if not VPCD_DRIVER.exists():
        pytest.skip(f"vsmartcard-vpcd is not installed ({VPCD_DRIVER} missing)")
    workdir = tmp_path_factory.mktemp("pcscd")
    if pcscd_socket_alive():
        if READER_0 not in reader_names():
            pytest.skip("a running pcscd has no 'Virtual PCD' reader (install vsmartcard-vpcd)")
        yield Pcscd(workdir, owned=False)
        return
    if os.geteuid() != 0 and not os.access(PCSCD_SOCKET.parent, os.W_OK):
        pytest.skip(f"cannot start pcscd: {PCSCD_SOCKET.parent} is not writable (run as root)")
    daemon = Pcscd(workdir, owned=True)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def vpcd(pcscd: Pcscd) -> Iterator[Pcscd]:
    """pcscd running with the vpcd reader, whatever the previous test did to it."""
    if pcscd.owned and not pcscd.running:
        pcscd.start()
    elif pcscd.owned and READER_0 not in reader_names():
        pcscd.restart()
    # Start each test with empty readers, not with the card the previous test just removed.
    wait_until(_no_card_present, 3)
    yield pcscd
    remove_all_cards()


class RunningReader:
    """A reader's `run` loop in a thread, its taps collected in a queue."""

    def __init__(self, reader, on_tap: Callable[[CardTap], None] | None = None) -> None:
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


@pytest.fixture
def running() -> Callable[..., RunningReader]:
    return RunningReader
