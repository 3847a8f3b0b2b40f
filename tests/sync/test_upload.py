"""Uploading the outbox to the reference platform, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from models.tables import AuditEvent, MealRecord, Outbox
from sync.uploader import pending_count
from sync.wire import RecordBatch, WireRecord
from tests.support.outbox import Kiosk, add_records
from tests.support.platform import Platform

pytestmark = pytest.mark.slow


def outbox(kiosk: Kiosk) -> dict[str, Outbox]:
    with kiosk.store.read() as session:
        return {o.record_id: o for o in session.scalars(select(Outbox))}


def test_backlog_reaches_platform_exactly_once(platform: Platform, kiosk: Kiosk) -> None:
    ids = add_records(kiosk.store, kiosk.device_id, 250)
    progress: list[tuple[int, int]] = []
    result = kiosk.uploader(platform.url, batch_size=100).run_round(
        progress=lambda d, t: progress.append((d, t))
    )

    assert result.ok, result.error
    assert (result.batches, result.accepted, result.duplicate, result.rejected) == (3, 250, 0, 0)
    assert progress[-1] == (250, 250)
    held = platform.records(kiosk.device_id)
    assert held["count"] == held["distinct_ids"] == 250
    assert held["seqs"] == list(range(1, 251))
    assert held["broken_links"] == []
    rows = outbox(kiosk)
    assert all(rows[i].uploaded_at is not None and rows[i].last_error is None for i in ids)
    with kiosk.store.read() as session:
        assert all(session.scalars(select(MealRecord.signature)))  # every record got signed
    assert platform.alerts(kiosk.device_id) == []

    # A second round has nothing to send.
    again = kiosk.uploader(platform.url).run_round()
    assert (again.batches, again.pending_left) == (0, 0)


def test_lost_response_resend_is_duplicate_not_double(platform: Platform, kiosk: Kiosk) -> None:
    """The platform stored a batch but the answer never came back: the kiosk sends it again."""
    add_records(kiosk.store, kiosk.device_id, 40)
    uploader = kiosk.uploader(platform.url, batch_size=40)
    batch = uploader._next_batch(after_seq=0)
    first, _ = uploader.client.post_records(
        RecordBatch(device_id=kiosk.device_id, sent_at=uploader.clock(), records=batch)
    )  # answer "lost": the kiosk marks nothing
    assert len(first.accepted) == 40
    assert pending_count(kiosk.store) == 40

    result = uploader.run_round()
    assert (result.accepted, result.duplicate) == (0, 40)
    assert pending_count(kiosk.store) == 0
    held = platform.records(kiosk.device_id)
    assert held["count"] == held["distinct_ids"] == 40


def test_same_record_id_with_other_content_is_rejected(platform: Platform, kiosk: Kiosk) -> None:
    add_records(kiosk.store, kiosk.device_id, 3)
    uploader = kiosk.uploader(platform.url)
    assert uploader.run_round().accepted == 3
    original = uploader._next_batch(after_seq=0)  # nothing pending
    assert original == []
    with kiosk.store.read() as session:
        rec = session.scalars(select(MealRecord).where(MealRecord.seq == 2)).one()
        fields = {c: getattr(rec, c) for c in WireRecord.model_fields}
    forged = WireRecord(**{**fields, "slot": "dinner"})
    result, _ = uploader.client.post_records(
        RecordBatch(device_id=kiosk.device_id, sent_at=uploader.clock(), records=[forged])
    )
    assert result.accepted == [] and result.duplicate == []
    assert result.rejected[0].reason.startswith("id_reuse")
    assert platform.records(kiosk.device_id)["count"] == 3


def _edit_locally(db_path, sql: str) -> None:
    """What someone with a sqlite3 shell could do: drop the guard, change the row, restore it."""
    conn = sqlite3.connect(db_path)
    trigger = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'meal_record_append_only'"
    ).fetchone()[0]
    conn.execute("DROP TRIGGER meal_record_append_only")
    conn.execute(sql)
    conn.execute(trigger)
    conn.commit()
    conn.close()


def test_locally_edited_record_is_rejected_and_kept(platform: Platform, kiosk: Kiosk) -> None:
    add_records(kiosk.store, kiosk.device_id, 10)
    _edit_locally(kiosk.store.db_path, "UPDATE meal_record SET slot = 'dinner' WHERE seq = 4")

    result = kiosk.uploader(platform.url).run_round()

    assert (result.accepted, result.rejected) == (9, 1)
    with kiosk.store.read() as session:
        edited = session.scalars(select(MealRecord).where(MealRecord.seq == 4)).one()
        row = session.get(Outbox, edited.record_id)
        assert row is not None and row.uploaded_at is None
        assert row.rejected_reason is not None and "edited" in row.rejected_reason
        audit = session.scalars(select(AuditEvent).where(AuditEvent.kind == "sync_rejected")).all()
        assert len(audit) == 1 and edited.record_id in audit[0].detail
    kinds = {a["kind"] for a in platform.alerts(kiosk.device_id)}
    assert "edited" in kinds
    # Rejected records are not resent, and they stay in the database.
    again = kiosk.uploader(platform.url).run_round()
    assert (again.batches, again.pending_left) == (0, 0)
    assert platform.records(kiosk.device_id)["count"] == 9


def test_rehashed_edit_breaks_the_chain_at_the_platform(platform: Platform, kiosk: Kiosk) -> None:
    """An editor who also recomputes the hash cannot sign it: the platform refuses the record."""
    from models.chain import link_hash

    add_records(kiosk.store, kiosk.device_id, 6)
    with kiosk.store.read() as session:
        rec = session.scalars(select(MealRecord).where(MealRecord.seq == 3)).one()
        fields = {c: getattr(rec, c) for c in WireRecord.model_fields if c != "signature"}
    fields["slot"] = "dinner"
    new_hash = link_hash(fields["prev_hash"], fields)
    _edit_locally(
        kiosk.store.db_path,
        f"UPDATE meal_record SET slot = 'dinner', hash = '{new_hash}' WHERE seq = 3",
    )
    result = kiosk.uploader(platform.url).run_round()
    # Records are signed when inserted: the recomputed hash carries no valid signature, so the
    # edited record itself is refused as forged (and seq 4 waits behind a gap).
    assert result.rejected == 1
    rows = outbox(kiosk)
    with kiosk.store.read() as session:
        three = session.scalars(select(MealRecord.record_id).where(MealRecord.seq == 3)).one()
    assert (rows[three].rejected_reason or "").startswith("forged")
    assert "forged" in {a["kind"] for a in platform.alerts(kiosk.device_id)}


def test_deleted_record_shows_as_gap(platform: Platform, kiosk: Kiosk) -> None:
    add_records(kiosk.store, kiosk.device_id, 5)
    conn = sqlite3.connect(kiosk.store.db_path)
    for trig in ("meal_record_keep_unacked", "outbox_keep_unacked"):
        conn.execute(f"DROP TRIGGER {trig}")
    conn.execute(
        "DELETE FROM outbox WHERE record_id = (SELECT record_id FROM meal_record WHERE seq = 3)"
    )
    conn.execute("DELETE FROM meal_record WHERE seq = 3")
    conn.commit()
    conn.close()

    result = kiosk.uploader(platform.url).run_round()
    assert result.accepted == 4
    gaps = [a for a in platform.alerts(kiosk.device_id) if a["kind"] == "gap"]
    assert [g["seq"] for g in gaps] == [4]


def test_wrong_device_key_is_forged(platform: Platform, kiosk: Kiosk, tmp_path) -> None:
    from sync.signing import generate_device_key

    impostor = generate_device_key(tmp_path / "other.key")
    # Records signed at insert by another key (the uploader never signs: issue 12.6).
    add_records(kiosk.store, kiosk.device_id, 2, signer=impostor.sign_record)
    result = kiosk.uploader(platform.url).run_round()
    assert result.rejected == 2
    assert {a["kind"] for a in platform.alerts(kiosk.device_id)} == {"forged"}
