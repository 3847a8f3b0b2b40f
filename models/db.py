"""The engine factory and the single writer.

Every connection gets WAL, synchronous=FULL (a record is on disk before the elder is told it
counted), foreign keys and a busy timeout. All writes go through `Store.write()`, which holds one
lock and starts `BEGIN IMMEDIATE`, so there is exactly one writer and a write never fails late
with "database is locked" after it has done its work. Readers use their own sessions.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(journal_mode: str, busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def set_pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, so that SQLAlchemy's "begin"
        # hook below decides the transaction type.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cur.execute(f"PRAGMA journal_mode={journal_mode}")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return set_pragmas


def make_engine(
    target: Path | str,
    *,
    immediate: bool = False,
    pool_size: int = 4,
    max_overflow: int = 4,
    pooled: bool = True,
    journal_mode: str = "WAL",
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    pre_ping: bool = True,
) -> Engine:
    """The one engine factory: the kiosk's Store, the reference platform and the benchmarks.

    `target` is a SQLite file path or any SQLAlchemy URL. For SQLite, every connection gets
    `journal_mode` (WAL), synchronous=FULL (a record is on disk before anyone is told it
    counted), foreign keys and a busy timeout; `immediate` makes every transaction
    `BEGIN IMMEDIATE` (a writer decides at BEGIN, never failing late with "database is
    locked"), otherwise `BEGIN` (deferred: a reader's consistent snapshot under WAL).
    `pooled=False` opens a fresh connection per checkout (the benchmarks' naive baseline).
    Other databases (PostgreSQL for the platform) get a pool with pre-ping (unless
    `pre_ping` is False) and none of the SQLite settings; their own isolation handles
    concurrent writers.
    """
    url = make_url(f"sqlite:///{target}" if isinstance(target, Path) else target)
    pool: dict[str, Any] = (
        {"poolclass": QueuePool, "pool_size": pool_size, "max_overflow": max_overflow}
        if pooled
        else {"poolclass": NullPool}
    )
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=pre_ping, **pool)
    engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
    event.listen(engine, "connect", _sqlite_pragmas(journal_mode, busy_timeout_ms))
    begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin_sql))
    return engine


class Store:
    """The database of one kiosk: one writer, any number of readers."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        # The writer needs exactly one connection; readers a few.
        self._writer = make_engine(db_path, immediate=True, pool_size=1, max_overflow=0)
        self._reader = make_engine(db_path)
        self._write_lock = threading.Lock()
        self._reopen = False  # see reopen()
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._reader, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """The one way to change the database: a transaction committed on normal exit."""
        with self._write_lock:
            if self._reopen:
                self._reopen = False
                self._writer.dispose()
                self._reader.dispose()
            with self._write_sessions() as session, session.begin():
                yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read_sessions() as session, session.begin():
            yield session

    def upgrade_schema(self, backup_dir: Path | None = None) -> Path | None:
        """Apply pending Alembic migrations; first back the database up if it has data.

        SQLite runs the whole upgrade in one transaction, so a failed migration leaves the old
        schema (and the old version runnable); the backup covers everything else.
        """
        from models.migrate import current_revision, head_revision, upgrade

        backup = None
        with self._write_lock:
            current = current_revision(self._writer)
            if current is not None and current != head_revision() and backup_dir is not None:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                backup = self.backup_to(backup_dir / f"pre-migrate-{current}-{stamp}.db")
                log.info("backed up %s before migrating from %s: %s", self.db_path, current, backup)
            upgrade(self._writer)
        return backup

    def schema_revision(self) -> str | None:
        from models.migrate import current_revision

        return current_revision(self._reader)

    def ping(self) -> None:
        """Raise if the database cannot be read (for health checks)."""
        with self._reader.connect() as conn:
            conn.execute(text("SELECT 1"))

    def write_probe(self) -> None:
        """Raise unless the write lock can be taken (busy_timeout bounds the wait).

        A stuck database — another process holding the lock, a hung disk — fails here, which
        is what the watchdog needs to know; reads under WAL would still succeed.
        """
        with self._write_lock, self._writer.connect() as conn:
            conn.execute(text("SELECT 1"))  # runs inside BEGIN IMMEDIATE
            conn.rollback()

    def reopen(self) -> None:
        """Have the next write close every pooled connection first and open the file afresh.

        SQLite opens a file it cannot write (the filesystem was read-only at the time) read-only
        for the life of that connection, and under WAL all connections of the process share
        that read-only shared-memory mapping: without this, check-in would stay refused after
        the filesystem is writable again, until someone restarted the daemon. Deferred to the
        next write because a connection opened while the filesystem is still read-only (a
        health poll) would poison the new ones again.
        """
        self._reopen = True

    def integrity_check(self, quick: bool = False) -> str:
        """'ok', or SQLite's first complaint. `quick` skips index checks (seconds, not minutes)."""
        pragma = "quick_check" if quick else "integrity_check"
        with self._reader.connect() as conn:
            return str(conn.execute(text(f"PRAGMA {pragma}")).scalar())

    def backup_to(self, target: Path) -> Path:
        """A consistent copy through SQLite's online backup API, safe while the daemon writes.

        Never copy the live file itself: with WAL, the newest records may be only in -wal.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with (
            contextlib.closing(sqlite3.connect(self.db_path)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)
        partial.replace(target)  # a crash mid-backup never leaves a half file under the name
        return target

    def checkpoint(self) -> tuple[int, int, int]:
        """Fold the WAL back into the database and truncate it: (busy, log, checkpointed)."""
        with self._write_lock, self._writer.connect() as conn:
            conn.rollback()  # no transaction may be open for a checkpoint
            # The driver's own connection: SQLAlchemy would open a transaction around the PRAGMA.
            raw = conn.connection.driver_connection
            if raw is None:
                raise RuntimeError("checkpoint: the pool handed out a closed connection")
            row = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def close(self) -> None:
        self._writer.dispose()
        self._reader.dispose()
