"""Migrations 0004 (records signed at insert) and 0006 (outbox receipts) on a database made by the previous release:
records signed at upload keep verifying, records still waiting are signed once at upload,
new records are signed at insert, and nothing else may set a signature."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from kiosk.ops.storage import open_store
from models.db import Store
from models.migrate import upgrade
from models.records import append_record, legacy_until_seq
from models.tables import MealRecord, Outbox, PlatformReceipt
from sync.evidence import audit_evidence
from sync.signing import PlatformVerifier, generate_device_key
from sync.uploader import Uploader
from tests.models.old_release import old_release_records

TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 30, 11, 30, tzinfo=TZ)


def _old_release_db(data: Path) -> None:
    """A 0003 database with 4 pending records, as the previous release wrote them."""
    store = Store(data / "kiosk.db")
    upgrade(store._writer, "0003")
    store.close()
    with sqlite3.connect(data / "kiosk.db") as conn:
        conn.execute(
            "INSERT INTO elder (elder_id, name, id_number_masked, group_name, contact_phone,"
            " pinyin_initials, status, agreement_signed, updated_at)"
            " VALUES ('E1', '王秀英', '', '', '', 'WXY', 'active', 1, ?)",
            (NOW.isoformat(),),
        )
    old_release_records(data / "kiosk.db", [1, 2, 3, 4], NOW)


def test_existing_records_keep_verifying_and_new_ones_are_signed_at_insert(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _old_release_db(data)
    key = generate_device_key(data / "keys" / "device.key")
    con = sqlite3.connect(data / "kiosk.db")
    with con:  # what the old uploader did at first upload
        for seq, h in con.execute("SELECT seq, hash FROM meal_record WHERE seq <= 2").fetchall():
            con.execute("UPDATE meal_record SET signature=? WHERE seq=?", (key.sign_record(h), seq))
            con.execute(  # ... and marked when the platform acknowledged it
                "UPDATE outbox SET uploaded_at=? WHERE record_id="
                "(SELECT record_id FROM meal_record WHERE seq=?)",
                (NOW.isoformat(), seq),
            )
    con.close()

    store = open_store(data)
    try:
        with store.read() as s:
            assert legacy_until_seq(s) == 4
        # Old signatures verify, 3-4 are pending; 1-2 rest on the migration's legacy receipt.
        platform = PlatformVerifier(Ed25519PrivateKey.generate().public_key())
        assert audit_evidence(store, key.record_ok, platform).ok
        with store.read() as s:
            receipts = s.scalars(select(PlatformReceipt)).all()
            assert [(r.kind, r.seq) for r in receipts] == [("legacy", 2)]
            marked = s.scalars(select(Outbox.receipt_id).where(Outbox.uploaded_at.is_not(None)))
            assert list(marked) == [receipts[0].id] * 2

        # The uploader signs the two legacy records once, as before...
        up = Uploader(store, client=None, key=key, device_id="d1")  # type: ignore[arg-type]
        batch = up._next_batch(0)
        assert all(key.record_ok(r.hash, r.signature) for r in batch)
        # ... and a new record carries its signature from the inserting transaction.
        with store.write() as s:
            rec = append_record(
                s, signer=key.sign_record, device_id="d1", elder_id="E1", service="meal",
                slot="lunch", service_date=dt.date(2026, 11, 5), checked_in_at=NOW,
                method="card", flags="",
            )  # fmt: skip
        assert key.record_ok(rec.hash, rec.signature or "")
        report = audit_evidence(store, key.record_ok)
        assert report.ok and report.head_seq == 5, report

        # Nothing may re-sign a record, nor insert one unsigned.
        with pytest.raises(Exception, match="signed once"), store.write() as s:
            s.execute(update(MealRecord).where(MealRecord.seq == 1).values(signature="x"))
        with pytest.raises(Exception, match="signed by the daemon at insert"), store.write() as s:
            append_record(
                s, signer=None, device_id="d1", elder_id="E1", service="meal", slot="lunch",
                service_date=dt.date(2026, 11, 6), checked_in_at=NOW, method="card", flags="",
            )  # fmt: skip
        with store.read() as s:
            assert len(s.scalars(select(MealRecord)).all()) == 5
    finally:
        store.close()


def test_the_legacy_boundary_cannot_be_moved(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    try:
        con = sqlite3.connect(store.db_path)
        for sql in (
            "UPDATE evidence_state SET legacy_until_seq = 99",
            "DELETE FROM evidence_state",
            "INSERT INTO evidence_state VALUES (2, 99, 'x', 'y')",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="written once"):
                con.execute(sql)
        con.close()
    finally:
        store.close()
