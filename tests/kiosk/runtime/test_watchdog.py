"""systemd notify protocol: READY=1 once serving, WATCHDOG=1 only while the daemon is healthy."""

from __future__ import annotations

import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiosk.runtime.sdnotify import Notifier
from tests.support.daemon import start_daemon, stop_daemon
from tests.support.roster import elder_row

pytestmark = pytest.mark.slow


class NotifySocket:
    """The datagram socket systemd would listen on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def receive(self, seconds: float) -> list[str]:
        """Every message that arrives within `seconds`."""
        messages = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        return messages

    def wait_for(self, prefix: str, seconds: float) -> list[str]:
        """Messages up to and including the first that starts with `prefix`."""
        seen = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            seen.append(msg)
            if msg.startswith(prefix):
                return seen
        pytest.fail(f"no {prefix!r} within {seconds}s; got {seen}")


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.sock.close()


def test_ready_then_watchdog_pings_that_stop_while_the_database_is_stuck(
    tmp_path: Path, notify: NotifySocket
) -> None:
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    proc, base = start_daemon(tmp_path, [elder_row(1)], env=env)
    try:
        ready = notify.wait_for("READY=1", 10)[-1]
        assert "STATUS=serving on http://127.0.0.1:" in ready
        assert httpx.get(f"{base}/api/health").status_code == 200  # READY means serving

        pings = notify.receive(1.5)
        assert pings.count("WATCHDOG=1") >= 3  # every 0.25 s for a 1 s watchdog

        # Another process holds the write lock: the daemon's self-check cannot take it.
        blocker = sqlite3.connect(tmp_path / "data" / "kiosk.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            notify.receive(0.5)  # a ping already under way may still arrive
            assert notify.receive(3.0).count("WATCHDOG=1") == 0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert "WATCHDOG=1" in notify.wait_for("WATCHDOG=1", 8)  # resumes once unstuck

        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in notify.wait_for("STOPPING=1", 10)
        assert proc.wait(10) == 0
    finally:
        stop_daemon(proc)


def test_notifier_is_silent_outside_systemd_and_understands_abstract_sockets() -> None:
    assert not Notifier({}).enabled
    assert Notifier({}).watchdog_s is None
    n = Notifier({"NOTIFY_SOCKET": "@kiosk-test", "WATCHDOG_USEC": "20000000"})
    assert n.enabled and n.watchdog_s == 20.0
    n.notify("READY=1")  # nobody listening: logged, never raised
