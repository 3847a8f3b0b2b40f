"""`kiosk run` as a real process: tap through the simulated reader, see it over HTTP, SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiosk.app import open_store
from models.roster import apply_rows
from tests.conftest import REPO, elder_row

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def noon_zone() -> str:
    """A fixed-offset zone in which it is about noon now, so a lunch slot is always open."""
    offset = 12 - dt.datetime.now(dt.UTC).hour
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}")


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
site: {{point_id: ZY-T, name: 进程测试小院, timezone: {noon_zone()}}}
device: {{device_id: proc-test}}
meal:
  slots: [{{name: lunch, start: "10:00", end: "14:00"}}]
web: {{port: {port}}}
readers: [{{kind: simulated, name: desk}}]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    config = write_config(tmp_path, port)
    store = open_store(tmp_path / "data")
    apply_rows(store, [elder_row(1, name="王秀英")], dt.datetime.now(dt.UTC), source="test")
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir", str(tmp_path / "data"), "run"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"daemon did not come up: {proc.communicate()[1]}")
        time.sleep(0.1)
    yield proc, base
    if proc.poll() is None:
        proc.kill()
        proc.wait()


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
    lingering = threading.Thread(
        target=lambda: httpx.get(f"{base}/api/events", timeout=30), daemon=True
    )
    lingering.start()
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - started < 10
    assert "kiosk stopped cleanly" in stderr


def test_port_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        config = write_config(tmp_path, port)
        proc = subprocess.run(
            [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir", str(tmp_path / "d"), "run"],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"web server did not start (port {port} in use?)" in proc.stderr


def test_bad_config_never_starts_a_daemon(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("site: {point_id: X, name: Y}\ndevice: {device_id: d}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir", str(tmp_path / "d"), "run"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{config}:1 meal: required key is missing"
    assert not (tmp_path / "d").exists()  # nothing was created by a half-configured start
