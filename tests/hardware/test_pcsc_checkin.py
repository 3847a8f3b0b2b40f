"""The PC/SC reader inside the running kiosk: a virtual card on pcscd's vpcd reader becomes a
durable record and an event on /api/events; `kiosk doctor` shows the card on the reader."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from hardware.card_uid import normalise
from hardware.vpcd_card import VirtualCard
from tests.support.config import write_config
from tests.support.daemon import kiosk_command, start_daemon, stop_daemon
from tests.support.paths import REPO
from tests.support.pcsc import PCSC_GROUP
from tests.support.roster import elder_row

# pcscd and the vpcd ports are global: one xdist worker runs every test that uses them.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(PCSC_GROUP), pytest.mark.pcsc]

UID = "04A23B1C"
PCSC_READER = (
    "readers: [{kind: pcsc, name: nfc, options: {wait_timeout_s: 0.2, retry_max_s: 1.0}}]\n"
)


def test_card_on_virtual_reader_is_recorded_and_streamed(vpcd, tmp_path: Path) -> None:
    roster = [elder_row(1, name="王秀英", card_uid=UID), elder_row(2, name="李建国")]
    proc, base = start_daemon(
        tmp_path, roster, extra_config="roster: {card_format: hex}\n", readers=PCSC_READER
    )
    try:
        events: list[dict[str, object]] = []
        listening = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{base}/api/events", timeout=15) as resp:
                for line in resp.iter_lines():
                    listening.set()
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                        if len(events) == 2:
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert listening.wait(10)
        health = httpx.get(f"{base}/api/health").json()
        assert health["readers"]["nfc"]["state"] == "ok", health

        with VirtualCard(UID):
            # Hold the card until its result is on screen (pcscd polls presence every ~0.4 s;
            # a fixed short hold missed it on a loaded machine), as an elder would.
            deadline = time.monotonic() + 10
            while not events and time.monotonic() < deadline:
                time.sleep(0.05)
        with VirtualCard("DEADBEEF"):  # a card nobody registered
            listener.join(10)
        assert [e["outcome"] for e in events] == ["accepted", "refused"]
        assert events[0]["elder_name"] == "王秀英"
        assert events[1]["message"] == "未登记的卡，请找护理员"
        assert httpx.get(f"{base}/api/headcount").json()["served"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        stop_daemon(proc)


def test_doctor_lists_the_reader_and_the_card_on_it(vpcd, tmp_path: Path) -> None:
    config = write_config(tmp_path, 1, "roster: {card_format: dec10}\n", readers=PCSC_READER)
    with VirtualCard(UID):
        result = subprocess.run(
            [*kiosk_command(config, tmp_path / "data", "doctor")],
            cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Virtual PCD 00 00" in result.stdout
    assert f"UID {UID} -> roster form (dec10) {normalise(UID, 'hex', 'dec10')}" in result.stdout
