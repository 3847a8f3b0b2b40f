"""Opening the kiosk database, backups, restore, integrity and WAL upkeep.

`open_store` is the one way to open the database: the daemon, every CLI command (through
`Context.store()`), the demo, the benchmarks and the tests. The rest backs
`kiosk db backup|restore` and `kiosk maintenance`.

The rule throughout: nothing is ever deleted that could be the only copy of a record. A
restore moves the current database aside instead of overwriting it, and backups are pruned
only down to a number kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from models.db import Store

log = logging.getLogger(__name__)

DB_FILE = "kiosk.db"
BACKUP_DIR = "backups"
KEEP_BACKUPS = 14


class StoreDamagedError(Exception):
    """The database failed its check; the daemon must not write into it."""


def backup_dir(data_dir: Path) -> Path:
    return data_dir / BACKUP_DIR


def _quick_check(store: Store) -> str:
    try:
        return store.integrity_check(quick=True)
    except SQLAlchemyError as exc:  # too damaged to even run the check
        return str(getattr(exc, "orig", exc))


def open_store(data_dir: Path) -> Store:
    """The kiosk database: checked, backed up if a migration is due, migrated.

    A database that fails its quick check is refused (StoreDamagedError): writing new records
    into a damaged file could lose the ones it still holds.
    """
    db_path = data_dir / DB_FILE
    existed = db_path.exists()
    store = Store(db_path)
    if existed and (verdict := _quick_check(store)) != "ok":
        store.close()
        raise StoreDamagedError(
            f"{db_path} failed its quick check ({verdict}); the kiosk will not write into it. "
            f"Stop it and restore the newest good backup: "
            f"kiosk db restore {backup_dir(data_dir)}/<file>.db"
        )
    store.upgrade_schema(backup_dir(data_dir))
    return store


def backup(store: Store, data_dir: Path, label: str = "kiosk") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = store.backup_to(backup_dir(data_dir) / f"{label}-{stamp}.db")
    log.info("backup written to %s", path)
    return path


def prune_backups(data_dir: Path, keep: int = KEEP_BACKUPS) -> list[Path]:
    """Drop the oldest nightly backups beyond `keep`; pre-migration and pre-restore copies stay."""
    nightly = sorted(backup_dir(data_dir).glob("kiosk-*.db"))
    doomed = nightly[:-keep] if keep > 0 else nightly
    for path in doomed:
        path.unlink()
    return doomed


def check_backup(path: Path) -> str:
    """'ok', or why the file is not a usable kiosk backup."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                return f"integrity check failed: {verdict}"
            conn.execute("SELECT count(*) FROM meal_record").fetchone()
    except sqlite3.DatabaseError as exc:
        return f"not a kiosk database: {exc}"
    return "ok"


def restore(db_path: Path, source: Path) -> Path:
    """Replace the database with a checked backup; the current file is moved aside, not lost.

    Run with the daemon stopped (systemctl stop kiosk).
    """
    verdict = check_backup(source)
    if verdict != "ok":
        raise ValueError(f"{source}: {verdict}")
    aside = db_path.with_name(f"{db_path.name}.before-restore-{dt.datetime.now():%Y%m%d-%H%M%S}")
    if db_path.exists():
        with sqlite3.connect(db_path) as conn:  # fold the WAL in so the moved file is whole
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db_path.replace(aside)
        for suffix in ("-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(db_path) as dst:
        src.backup(dst)
    log.warning("database restored from %s; the previous one is kept as %s", source, aside)
    return aside


@dataclass(frozen=True)
class MaintenanceReport:
    backup: Path
    integrity: str
    checkpoint: tuple[int, int, int]
    pruned: list[Path]


def nightly(store: Store, data_dir: Path) -> MaintenanceReport:
    """Backup, full integrity check, WAL checkpoint, backup retention."""
    path = backup(store, data_dir)
    integrity = store.integrity_check()
    if integrity != "ok":
        log.error("integrity check failed: %s (restore with: kiosk db restore %s)", integrity, path)
    checkpoint = store.checkpoint()
    return MaintenanceReport(path, integrity, checkpoint, prune_backups(data_dir))
