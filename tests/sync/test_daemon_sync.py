"""The daemon uploads on its own: provisioned terminal + reference platform, end to end."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from kiosk.ops.provision import provision
from tests.support.config import noon_zone
from tests.support.daemon import start_daemon, stop_daemon
from tests.support.platform import Platform
from tests.support.roster import elder_row
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def test_tapped_meal_reaches_the_platform_and_leaves_the_queue(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    cred = tmp_path / "cred"
    code = sqlite_platform.enrolment_code("ZY-T", noon_zone())  # the daemon's site zone
    provision(sqlite_platform.url, "proc-test", "ZY-T", code, cred)
    platform_cfg = f"platform: {{url: {sqlite_platform.url}, upload_interval_s: 5, checkpoint_interval_s: 5}}\n"
    proc, base = start_daemon(
        tmp_path,
        [elder_row(1)],
        env={"CREDENTIALS_DIRECTORY": str(cred)},
        extra_config=platform_cfg,
    )
    try:
        assert (
            httpx.post(f"{base}/api/simulate/tap", json={"uid": elder_row(1).card_uid}).status_code
            == 202
        )
        # The tap is recorded by the reader thread: wait for it before asking whether the
        # queue is empty, or an upload round that ran before it would satisfy the wait.
        wait_until(lambda: httpx.get(f"{base}/api/headcount").json()["served"], "the tap")

        def uploaded() -> dict | None:
            health: dict = httpx.get(f"{base}/api/health").json()
            done = health["sync"].get("last_success_at") and health["queue_depth"] == 0
            return health if done else None

        health = wait_until(uploaded, "the tap to be uploaded", timeout=60, step=0.2)
        assert health["sync"]["state"] == "ok", health
        assert health["queue_depth"] == 0, health
        stored = sqlite_platform.records("proc-test")
        assert stored["count"] == stored["distinct_ids"] == 1, stored
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        stop_daemon(proc)


def test_unprovisioned_daemon_serves_and_says_why_sync_is_off(tmp_path: Path) -> None:
    proc, base = start_daemon(
        tmp_path, [elder_row(1)], env={"CREDENTIALS_DIRECTORY": str(tmp_path / "none")},
        extra_config="platform: {url: 'http://127.0.0.1:9'}\n",
    )  # fmt: skip
    try:
        httpx.post(f"{base}/api/simulate/tap", json={"uid": elder_row(1).card_uid})
        wait_until(lambda: httpx.get(f"{base}/api/headcount").json()["served"], "the tap")
        health = httpx.get(f"{base}/api/health").json()
        assert health["sync"] == {
            "state": "off",
            "detail": "not provisioned (no device token): run `kiosk provision`",
        }
        assert health["queue_depth"] == 1  # recorded, waiting
    finally:
        stop_daemon(proc)
