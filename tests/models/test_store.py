"""The store: pragmas on every connection, migrations, guards, the chain, durability."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from kiosk.ops.storage import open_store
from models.chain import GENESIS_HASH, verify_chain
from models.db import Store
from models.migrate import head_revision
from models.records import append_record, uuid7
from models.tables import Base, Elder, MealRecord, row_to_dict
from tests.models.old_release import old_release_records
from tests.support.paths import REPO
from tests.support.roster import TZ

NOW = dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ)


def fake_signer(record_hash: str) -> str:
    """Stands in for the device key (models/ only stores what the signer returns)."""
    return "t:" + record_hash


def add_elder(store: Store, elder_id: str = "E1") -> None:
    with store.write() as s:
        s.add(Elder(elder_id=elder_id, name="王秀英", updated_at=NOW))


def append(store: Store, elder_id: str = "E1", slot: str = "lunch", day: int = 2) -> MealRecord:
    with store.write() as s:
        return append_record(
            s, signer=fake_signer, device_id="d1", elder_id=elder_id, service="meal", slot=slot,
            service_date=dt.date(2026, 12, day), checked_in_at=NOW, method="card", flags="",
        )  # fmt: skip


def test_every_connection_has_the_kiosk_pragmas(store: Store) -> None:
    for session_cm in (store.read, store.write):
        with session_cm() as s:
            conn = s.connection()
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_migrations_reach_head_and_match_the_models(store: Store) -> None:
    assert store.schema_revision() == head_revision() == "0009"
    with store._reader.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    store = open_store(tmp_path)  # second start: nothing to do, nothing lost
    assert store.schema_revision() == "0009"
    store.close()


def test_seq_is_gapless_and_chain_verifies(store: Store) -> None:
    add_elder(store)
    records = [append(store, day=d) for d in (1, 2, 3)]
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    with store.read() as s:
        rows = [row_to_dict(r) for r in s.scalars(select(MealRecord).order_by(MealRecord.seq))]
    assert verify_chain(rows) == []


def test_failed_insert_does_not_consume_a_seq(store: Store) -> None:
    add_elder(store)
    append(store)
    with pytest.raises(Exception, match="UNIQUE"):
        append(store)  # same elder, slot and day
    assert append(store, day=3).seq == 2


def test_chain_detects_edit_gap_and_reorder(store: Store) -> None:
    add_elder(store)
    for d in (1, 2, 3, 4):
        append(store, day=d)
    with store.read() as s:
        rows = [row_to_dict(r) for r in s.scalars(select(MealRecord).order_by(MealRecord.seq))]
    edited = [dict(r) for r in rows]
    edited[1]["slot"] = "dinner"
    assert [f.seq for f in verify_chain(edited)] == [2]
    gap = rows[:1] + rows[2:]
    assert any("gap" in f.problem for f in verify_chain(gap))


def test_database_refuses_to_rewrite_or_drop_unacknowledged_records(store: Store) -> None:
    add_elder(store)
    record = append(store)
    conn = sqlite3.connect(store.db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(
                "UPDATE meal_record SET slot='dinner' WHERE record_id=?", (record.record_id,)
            )
        with pytest.raises(sqlite3.IntegrityError, match="not yet acknowledged"):
            conn.execute("DELETE FROM outbox WHERE record_id=?", (record.record_id,))
        with pytest.raises(sqlite3.IntegrityError, match="not yet acknowledged"):
            conn.execute("DELETE FROM meal_record WHERE record_id=?", (record.record_id,))
        # Upload state may change: that is how the uploader marks acknowledgements.
        conn.execute("UPDATE outbox SET attempts=1 WHERE record_id=?", (record.record_id,))
        conn.commit()
    finally:
        conn.close()


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime refused"), store.write() as s:
        s.add(Elder(elder_id="E9", name="x", updated_at=dt.datetime(2026, 1, 1)))


def test_uuid7_is_time_ordered_and_versioned() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(i[14] == "7" for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # millisecond prefix sorts


def test_committed_record_survives_sigkill(tmp_path: Path) -> None:
    """A record whose check-in returned is on disk, even if the process dies at once."""
    script = textwrap.dedent(
        f"""
        import datetime as dt, os, sys, zoneinfo
        sys.path.insert(0, {str(REPO)!r})
        from kiosk.ops.storage import open_store
        from models.records import append_record
        from models.tables import Elder
        tz = zoneinfo.ZoneInfo("Asia/Shanghai")
        now = dt.datetime.now(tz)
        store = open_store(__import__("pathlib").Path({str(tmp_path)!r}))
        with store.write() as s:
            s.add(Elder(elder_id="E1", name="x", updated_at=now))
        for day in range(1, 21):
            with store.write() as s:
                r = append_record(s, signer=lambda h: "t:" + h, device_id="d", elder_id="E1", service="meal", slot="lunch",
                    service_date=dt.date(2026, 12, day), checked_in_at=now, method="card", flags="")
            print(r.record_id, flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL
    reported = proc.stdout.split()
    assert len(reported) == 20
    store = open_store(tmp_path)
    try:
        with store.read() as s:
            stored = s.scalars(select(MealRecord.record_id).order_by(MealRecord.seq)).all()
        assert stored == reported
        assert store.integrity_check() == "ok"
    finally:
        store.close()
    assert not (tmp_path / "kiosk.db-journal").exists()


def test_upgrade_from_the_first_released_schema_keeps_records_and_backs_up(
    tmp_path: Path,
) -> None:
    """A terminal still on schema 0001 with records: the new version migrates it forward."""
    from models.migrate import upgrade

    store = Store(tmp_path / "kiosk.db")
    upgrade(store._writer, "0001")
    with sqlite3.connect(store.db_path) as conn:  # as the first release wrote them
        conn.execute(
            "INSERT INTO elder (elder_id, name, id_number_masked, group_name, contact_phone,"
            " pinyin_initials, status, agreement_signed, updated_at)"
            " VALUES ('E1', '王秀英', '', '', '', 'WXY', 'active', 1, ?)",
            (NOW.isoformat(),),
        )
    old_ids = old_release_records(store.db_path, [1, 2], NOW)
    store.close()

    migrated = open_store(tmp_path)
    try:
        assert migrated.schema_revision() == head_revision() != "0001"
        with migrated.read() as s:
            rows = [row_to_dict(r) for r in s.scalars(select(MealRecord).order_by(MealRecord.seq))]
        assert [r["record_id"] for r in rows] == old_ids
        assert verify_chain(rows) == []
    finally:
        migrated.close()
    backups = list((tmp_path / "backups").glob("pre-migrate-0001-*.db"))
    assert len(backups) == 1
    with sqlite3.connect(backups[0]) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0001"
        assert conn.execute("SELECT count(*) FROM meal_record").fetchone()[0] == 2
