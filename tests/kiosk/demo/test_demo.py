"""`kiosk demo` (what `make demo` runs): seeded roster, simulated taps, reference platform."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zoneinfo

import httpx
import pytest

from tests.support.net import free_port
from tests.support.paths import REPO
from tests.support.ui import sign_in_client

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_demo_checks_people_in_and_uploads_them() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--config", str(REPO / "config.yaml"), "demo",
         "--port", str(port), "--pace", "0.3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        health: dict = {}
        served = 0
        deadline = time.monotonic() + 120  # a loaded 2-core CI machine starts slowly
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2).json()
                served = httpx.get(f"{base}/api/headcount", timeout=2).json()["served"]
            except httpx.TransportError:
                time.sleep(0.3)
                continue
            if served >= 5 and health["sync"].get("last_success_at"):
                break
            time.sleep(0.3)
        assert served >= 5, (health, proc.poll(), proc.stderr.read() if proc.poll() else "")  # type: ignore[union-attr]
        assert health["sync"]["state"] == "ok", health
        assert "今日午餐" in httpx.get(base + "/").text
        # 60 days of history and a caregiver whose PIN is printed: the caregiver pages have
        # content on first start.
        pin = re.search(r"PIN (\d{6})", "".join(lines))
        assert pin, lines
        with httpx.Client(base_url=base, timeout=10) as client:
            sign_in_client(client, "/books", pin=pin.group(1))  # type: ignore[arg-type]
            today = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date()
            last_month = today.replace(day=1) - dt.timedelta(days=1)
            books = client.get(f"/books?month={last_month:%Y-%m}").text
            assert "猪肉" in books and "健康证" in books
            assert client.get("/api/missing").json()["missing"], "regulars who stopped coming"
            monthly = client.get(f"/notices/monthly?month={last_month:%Y-%m}").text
            assert monthly.count("<tr") > 5
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
        reader.join(timeout=5)
        out = "".join(lines)
    assert proc.returncode == 0, err[-2000:]
    assert f"open http://127.0.0.1:{port}/; uploads to the reference platform" in out
    assert "kiosk stopped cleanly" in err
