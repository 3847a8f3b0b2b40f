"""The SQLite engine and the single writer.

Every connection gets WAL, synchronous=FULL (a record is on disk before the elder is told it
counted), foreign keys and a busy timeout. All writes go through `Store.write()`, which holds one
lock and starts `BEGIN IMMEDIATE`, so there is exactly one writer and a write never fails late
with "database is locked" after it has done its work. Readers use their own sessions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


def _set_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module, so that SQLAlchemy's "begin"
    # below decides the transaction type.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(db_path: Path, *, immediate: bool = False) -> Engine:
    """An engine whose connections carry the kiosk's pragmas.

    `immediate` makes every transaction `BEGIN IMMEDIATE` (the writer); otherwise `BEGIN`
    (deferred), which gives readers a consistent snapshot under WAL.
    """
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"check_same_thread": False},
        # The writer needs exactly one connection; readers a few.
        poolclass=QueuePool,
        pool_size=1 if immediate else 4,
        max_overflow=0 if immediate else 4,
    )
    event.listen(engine, "connect", _set_pragmas)
    begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin_sql))
    return engine


class Store:
    """The database of one kiosk: one writer, any number of readers."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = make_engine(db_path, immediate=True)
        self._reader = make_engine(db_path)
        self._write_lock = threading.Lock()
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._reader, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """The one way to change the database: a transaction committed on normal exit."""
        with self._write_lock, self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read_sessions() as session, session.begin():
            yield session

    def upgrade_schema(self) -> None:
        """Apply pending Alembic migrations (under the write lock: migrations are writes)."""
        from models.migrate import upgrade

        with self._write_lock:
            upgrade(self._writer)

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

    def integrity_check(self) -> str:
        with self._reader.connect() as conn:
            return str(conn.execute(text("PRAGMA integrity_check")).scalar())

    def close(self) -> None:
        self._writer.dispose()
        self._reader.dispose()
