"""`kiosk demo` (what `make demo` runs): seeded roster, simulated taps, reference platform."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REPO
from tests.kiosk.daemon_proc import free_port

pytestmark = pytest.mark.slow


def test_demo_checks_people_in_and_uploads_them() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--config", str(REPO / "config.yaml"), "demo",
         "--port", str(port), "--pace", "0.3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        health: dict = {}
        served = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2).json()
                served = httpx.get(f"{base}/api/headcount", timeout=2).json()["served"]
            except httpx.TransportError:
                time.sleep(0.3)
                continue
            if served >= 5 and health["sync"].get("last_success_at"):
                break
            time.sleep(0.3)
        assert served >= 5, health
        assert health["sync"]["state"] == "ok", health
        assert "今日午餐" in httpx.get(base + "/").text
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert f"open http://127.0.0.1:{port}/; uploads to the reference platform" in out
    assert "kiosk stopped cleanly" in err
