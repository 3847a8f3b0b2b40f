"""Fixtures for the card-reader tests: a real pcscd with the vpcd virtual reader.

The session fixture `pcscd` starts its own ``pcscd --foreground`` with a private reader.conf.d
(only the vpcd reader) so the tests can restart it; if a pcscd not started by us is already
running, the tests use it and the ones that must restart pcscd skip. Without pcscd or the vpcd
driver (Debian packages pcscd and vsmartcard-vpcd) the PC/SC tests skip with that reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from hardware.vpcd_card import (
    PCSCD_SOCKET,
    READER_0,
    VPCD_DRIVER,
    pcscd_socket_alive,
    reader_names,
    remove_all_cards,
)
from tests.support.pcsc import Pcscd, RunningReader, no_card_present
from tests.support.wait import wait_until


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
    wait_until(no_card_present, timeout=3)
    yield pcscd
    remove_all_cards()


@pytest.fixture
def running() -> Callable[..., RunningReader]:
    return RunningReader
