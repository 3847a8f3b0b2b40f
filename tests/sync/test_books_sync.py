"""The village's books reach the platform exactly once, verified: against the reference platform
on SQLite and PostgreSQL, with the attacks an insider would try on them."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from kiosk.touchscreen.books import Books
from models.books import BookEntry, BookOutbox
from models.tables import PlatformReceipt
from sync.book_uploader import BookUploader, wire_entry
from sync.evidence import receipt_problems
from sync.signing import PlatformVerifier
from sync.wire import BookBatch, WireBookEntry, b64encode, record_message
from tests.support.outbox import Kiosk
from tests.support.platform import Platform

pytestmark = pytest.mark.slow
TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 12, 8, 10, 0, tzinfo=TZ)
EXPENSE = {
    "date": "2026-12-03", "category": "食材", "food_type": "奶", "item": "牛奶", "quantity": "12",
    "unit": "盒", "amount": "36.00", "supplier": "镇超市", "buyer": "李秀兰",
}  # fmt: skip


def books_of(kiosk: Kiosk) -> Books:
    return Books(kiosk.store, kiosk.device_id, lambda: kiosk.key.sign_record)


def test_books_upload_once_and_the_county_reads_them(platform: Platform, kiosk: Kiosk) -> None:
    books = books_of(kiosk)
    first = books.add("expense", EXPENSE, caregiver_id="C001", now=NOW)
    books.add("expense", {**EXPENSE, "amount": "30.00"}, caregiver_id="C001", now=NOW,
              corrects=first.entry_id)  # fmt: skip
    books.add(
        "donation",
        {"date": "2026-12-05", "donor": "县供销社", "donor_type": "企业", "what": "money",
         "amount": "800", "purpose": "添置餐桌"},
        caregiver_id="C001", now=NOW,
    )  # fmt: skip
    with kiosk.client(platform.url) as client:
        uploader = BookUploader(kiosk.store, client, kiosk.device_id, lambda: NOW)
        done = uploader.run_round()
        assert (done.sent, done.accepted, done.rejected) == (3, 3, 0)
        assert uploader.run_round().sent == 0  # nothing twice
    with kiosk.store.read() as s:
        assert all(o.uploaded_at and o.receipt_id for o in s.scalars(select(BookOutbox)))
        assert s.scalar(select(PlatformReceipt.kind).where(PlatformReceipt.kind == "books"))
    # the kiosk can check the receipts it keeps with the platform's public key
    verifier = PlatformVerifier.from_b64(platform.public_key)
    assert receipt_problems(kiosk.store, verifier) == []

    held = platform.operator("GET", f"/v1/admin/points/{kiosk.point_id}/books?month=2026-12")
    assert held.status_code == 200, held.text
    rows = held.json()
    assert [r["body"].get("amount") for r in rows] == ["36.00", "30.00", "800.00"]
    assert [r["superseded"] for r in rows] == [True, False, False]


def test_an_entry_cannot_be_hidden_by_marking_it_uploaded(kiosk: Kiosk) -> None:
    books_of(kiosk).add("expense", EXPENSE, caregiver_id="C001", now=NOW)
    db = sqlite3.connect(kiosk.store.db_path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="receipt"):
            db.execute("UPDATE book_outbox SET uploaded_at = '2026-12-08T10:00:00+08:00'")
        with pytest.raises(sqlite3.DatabaseError):
            db.execute("DELETE FROM book_outbox")
    finally:
        db.close()


def _entry(kiosk: Kiosk) -> WireBookEntry:
    """The first entry of this kiosk's books, as it goes on the wire."""
    books_of(kiosk).add("expense", EXPENSE, caregiver_id="C001", now=NOW)
    with kiosk.store.read() as s:
        return wire_entry(s.scalars(select(BookEntry)).one())


def test_platform_refuses_forged_edited_and_forked_entries(
    sqlite_platform: Platform, kiosk: Kiosk
) -> None:
    genuine = _entry(kiosk)
    stranger = Ed25519PrivateKey.generate()
    forged = genuine.model_copy(
        update={"signature": b64encode(stranger.sign(record_message(genuine.hash)))}
    )
    edited = genuine.model_copy(update={"body": genuine.body.replace("36.00", "360.00")})
    forked = genuine.model_copy(update={"prev_hash": "1" * 64})
    forked = forked.model_copy(update={"hash": forked.computed_hash()})
    # signed with the device's own key (a technician with the key file): still not the chain
    forked = forked.model_copy(update={"signature": kiosk.key.sign_record(forked.hash)})
    with kiosk.client(sqlite_platform.url) as client:
        for bad, reason in ((forged, "signature"), (edited, "hash"), (forked, "fork")):
            result = client.post_books(
                BookBatch(device_id=kiosk.device_id, sent_at=NOW, entries=[bad])
            )
            assert result.accepted == [] and reason in result.rejected[0].reason, result
        ok = client.post_books(BookBatch(device_id=kiosk.device_id, sent_at=NOW, entries=[genuine]))
        assert ok.accepted == [genuine.entry_id]


def test_reconcile_resends_entries_the_platform_lost(
    sqlite_platform: Platform, kiosk: Kiosk
) -> None:
    books = books_of(kiosk)
    for amount in ("10.00", "20.00", "30.00"):
        books.add("expense", {**EXPENSE, "amount": amount}, caregiver_id="C001", now=NOW)
    with kiosk.client(sqlite_platform.url) as client:
        uploader = BookUploader(kiosk.store, client, kiosk.device_id, lambda: NOW)
        assert uploader.run_round().accepted == 3
        assert uploader.reconcile() == 0  # nothing lost
        # rows deleted on the platform's side (a database administrator, a bad restore)
        db = sqlite3.connect(sqlite_platform.db_url.removeprefix("sqlite:///"))
        try:
            db.execute("DELETE FROM book_entry WHERE device_id = ? AND seq > 1", (kiosk.device_id,))
            db.commit()
        finally:
            db.close()
        assert client.books_head().seq == 1
        assert uploader.reconcile() == 2
        assert client.books_head().seq == 3
