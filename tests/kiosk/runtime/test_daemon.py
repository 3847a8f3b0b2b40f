"""`kiosk run` as a real process: tap through the simulated reader, see it over HTTP, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.config import write_config
from tests.support.daemon import kiosk_command, start_daemon, stop_daemon
from tests.support.paths import REPO
from tests.support.roster import elder_row

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, base = start_daemon(tmp_path, [elder_row(1, name="王秀英")])
    yield proc, base
    stop_daemon(proc)


def test_tap_is_recorded_streamed_and_counted_then_sigterm_exits_cleanly(
    daemon: tuple[subprocess.Popen[str], str],
) -> None:
    proc, base = daemon
    events: list[dict[str, object]] = []
    subscribed = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{base}/api/events", timeout=10) as resp:
            for line in resp.iter_lines():
                subscribed.set()
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(10), "no SSE stream"

    resp = httpx.post(f"{base}/api/simulate/tap", json={"uid": elder_row(1).card_uid})
    assert resp.status_code == 202
    listener.join(10)
    assert events and events[0]["outcome"] == "accepted"
    assert events[0]["elder_name"] == "王秀英"

    headcount = httpx.get(f"{base}/api/headcount").json()
    assert headcount["served"] == 1
    assert headcount["recent"][0]["name"] == "王秀英"
    assert httpx.get(f"{base}/api/health").json()["readers"]["desk"]["state"] == "ok"

    # An open SSE connection must not hold up shutdown.
    subscribed = threading.Event()

    def linger() -> None:
        try:
            with httpx.stream("GET", f"{base}/api/events", timeout=30) as resp:
                subscribed.set()
                for _ in resp.iter_bytes():
                    pass
        except httpx.HTTPError:
            pass  # the daemon closing the stream is what this test wants

    lingering = threading.Thread(target=linger, daemon=True)
    lingering.start()
    assert subscribed.wait(10), "the SSE stream did not open"
    proc.send_signal(signal.SIGTERM)
    # A bound, not a speed figure: a shutdown held up by the open stream never ends.
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "kiosk stopped cleanly" in stderr


def test_port_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        config = write_config(tmp_path, port)
        proc = subprocess.run(
            kiosk_command(config, tmp_path / "d", "run"),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"web server did not start (port {port} in use?)" in proc.stderr


def test_bad_config_never_starts_a_daemon(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("site: {point_id: X, name: Y}\ndevice: {device_id: d}\n", encoding="utf-8")
    proc = subprocess.run(
        kiosk_command(config, tmp_path / "d", "run"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{config}:1 meal: required key is missing"
    assert not (tmp_path / "d").exists()  # nothing was created by a half-configured start
