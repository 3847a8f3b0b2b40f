"""Backups, restore, the start-up check and nightly upkeep: nothing stored is ever lost."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.checkin.rules import CheckinRequest, Method, Outcome
from kiosk.ops.storage import (
    DB_FILE,
    StoreDamagedError,
    check_backup,
    nightly,
    open_store,
    prune_backups,
    restore,
)
from kiosk.runtime.services import KioskServices
from tests.support.paths import REPO
from tests.support.roster import Clock, elder_row


def count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM meal_record").fetchone()[0]


def tap(services: KioskServices, n: int) -> None:
    req = CheckinRequest(Method.CARD, card_uid=elder_row(n).card_uid)
    assert services.checkin.check_in(req).outcome is Outcome.ACCEPTED


def test_nightly_backs_up_checks_and_truncates_the_wal(
    services: KioskServices, tmp_path: Path
) -> None:
    tap(services, 1)
    tap(services, 2)
    data = tmp_path / "data"
    report = nightly(services.store, data)
    assert report.integrity == "ok"
    assert count(report.backup) == 2  # the WAL's newest records are in the backup
    assert check_backup(report.backup) == "ok"
    assert report.checkpoint[0] == 0  # not busy
    assert (data / f"{DB_FILE}-wal").stat().st_size == 0


def test_prune_keeps_the_newest_nightly_backups_only(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    for day in range(1, 6):
        (backups / f"kiosk-202612{day:02d}-023000.db").write_bytes(b"x")
    (backups / "pre-migrate-0001-20261201-000000.db").write_bytes(b"x")
    pruned = prune_backups(tmp_path, keep=2)
    assert [p.name for p in pruned] == [f"kiosk-202612{d:02d}-023000.db" for d in (1, 2, 3)]
    assert sorted(p.name for p in backups.iterdir()) == [
        "kiosk-20261204-023000.db",
        "kiosk-20261205-023000.db",
        "pre-migrate-0001-20261201-000000.db",
    ]


def test_restore_keeps_the_current_database_aside(
    services: KioskServices, tmp_path: Path, clock: Clock
) -> None:
    tap(services, 1)
    data = tmp_path / "data"
    saved = nightly(services.store, data).backup
    tap(services, 2)
    services.store.close()

    aside = restore(data / DB_FILE, saved)
    assert count(data / DB_FILE) == 1
    assert count(aside) == 2  # the newer record still exists, beside it


def test_restore_refuses_a_file_that_is_not_a_good_backup(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a kiosk database"):
        restore(tmp_path / DB_FILE, bogus)
    assert not (tmp_path / DB_FILE).exists()


@pytest.mark.slow  # runs `kiosk` as a subprocess
def test_damaged_database_is_refused_at_start(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.close()
    db = tmp_path / DB_FILE
    raw = bytearray(db.read_bytes())
    page = 4096
    raw[page : page * 3] = b"\xa5" * (page * 2)  # scribble over the schema's table pages
    db.write_bytes(bytes(raw))
    with pytest.raises(StoreDamagedError, match=r"failed its quick check.*kiosk db restore"):
        open_store(tmp_path)
    assert db.read_bytes() == bytes(raw)  # and nothing was written into it

    run = subprocess.run(
        [sys.executable, "-m", "kiosk", "--config", str(REPO / "config.yaml"),
         "--data-dir", str(tmp_path), "run"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "the kiosk will not write into it" in run.stderr


@pytest.mark.slow  # runs `kiosk` as a subprocess
def test_cli_backup_and_maintenance(services: KioskServices, tmp_path: Path) -> None:
    tap(services, 1)
    services.store.close()
    base = [sys.executable, "-m", "kiosk", "--config", str(REPO / "config.yaml"),
            "--data-dir", str(tmp_path / "data")]  # fmt: skip
    backup = subprocess.run([*base, "db", "backup"], capture_output=True, text=True, timeout=60)
    assert backup.returncode == 0, backup.stderr
    nightly_run = subprocess.run([*base, "maintenance"], capture_output=True, text=True, timeout=60)
    assert nightly_run.returncode == 0, nightly_run.stderr
    assert "integrity ok" in nightly_run.stdout
    files = sorted((tmp_path / "data" / "backups").glob("kiosk-*.db"))
    assert files and all(count(f) == 1 for f in files)
