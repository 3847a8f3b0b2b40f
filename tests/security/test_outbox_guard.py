"""Issue 12.7: the outbox is guarded like the records. Marking a pending record as uploaded
needs the platform's receipt naming it; a receipt forged in the sqlite3 shell (the insider
drops no trigger, he fabricates the acknowledgement) and the deletion it enabled are evident
to the kiosk's own evidence check and health. Before, `UPDATE outbox SET uploaded_at=...`
and two DELETEs erased a meal without any trace on the kiosk."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from models.tables import MealRecord, Outbox, PlatformReceipt
from sync.platform.receipts import sign_batch
from sync.wire import BatchResult, b64encode
from tests.security.local_evidence import Terminal, make_terminal, sqlite3_shell

PLATFORM_KEY = Ed25519PrivateKey.generate()
PLATFORM_PUB = b64encode(PLATFORM_KEY.public_key().public_bytes_raw())
NOW = dt.datetime(2026, 12, 2, 4, 0, tzinfo=dt.UTC)


def _ids(term: Terminal) -> list[str]:
    with term.services.store.read() as s:
        return list(s.scalars(select(MealRecord.record_id).order_by(MealRecord.seq)))


def test_pending_rows_cannot_be_marked_uploaded_or_deleted_from_the_shell(
    tmp_path: Path,
) -> None:
    term = make_terminal(tmp_path, platform_key=PLATFORM_PUB)
    assert term.tap(1).accepted and term.tap(2).accepted
    first = _ids(term)[0]
    mark = sqlite3_shell(
        term.db_path,
        f"UPDATE outbox SET uploaded_at='2026-12-02T12:00:00.000000+08:00' "
        f"WHERE record_id='{first}';",
    )
    assert "only with the platform receipt naming it" in mark.stderr
    # A genuine receipt for ANOTHER record does not cover this one either.
    other = _ids(term)[1]
    result = sign_batch(
        PLATFORM_KEY,
        term.device_id,
        BatchResult(accepted=[other], duplicate=[], rejected=[], server_time=NOW),
    )
    term.uploader_apply(result, [other])
    with term.services.store.read() as s:
        receipt_id = s.scalar(select(PlatformReceipt.id))
    reuse = sqlite3_shell(
        term.db_path,
        f"UPDATE outbox SET uploaded_at='2026-12-02T12:00:00.000000+08:00', "
        f"receipt_id={receipt_id} WHERE record_id='{first}';",
    )
    assert "only with the platform receipt naming it" in reuse.stderr
    delete = sqlite3_shell(term.db_path, f"DELETE FROM outbox WHERE record_id='{first}';")
    assert "not yet acknowledged" in delete.stderr or "receipt" in delete.stderr
    with term.services.store.read() as s:
        assert s.scalar(select(Outbox.uploaded_at).where(Outbox.record_id == first)) is None
    assert term.services.checkin.check_evidence().ok  # the genuine receipt verifies


def test_a_forged_receipt_and_the_deletion_it_allowed_are_evident(tmp_path: Path) -> None:
    term = make_terminal(tmp_path, platform_key=PLATFORM_PUB)
    for n in (1, 2, 3):
        assert term.tap(n).accepted
    victim = _ids(term)[0]
    forged_sig = b64encode(Ed25519PrivateKey.generate().sign(b"not the platform"))
    attack = f"""
        INSERT INTO platform_receipt (kind, device_id, server_time, record_ids, signature,
            received_at)
        VALUES ('batch', '{term.device_id}', '2026-12-02T04:00:00.000000+00:00',
                '{json.dumps([victim])}', '{forged_sig}', '2026-12-02T12:00:00.000000+08:00');
        UPDATE outbox SET uploaded_at='2026-12-02T12:00:00.000000+08:00',
            receipt_id=(SELECT max(id) FROM platform_receipt) WHERE record_id='{victim}';
        DELETE FROM meal_record WHERE record_id='{victim}';
        DELETE FROM outbox WHERE record_id='{victim}';
    """
    out = sqlite3_shell(term.db_path, attack)
    assert out.returncode == 0, out.stderr  # the triggers only check structure...
    report = term.services.checkin.check_evidence()  # ... the signature check catches it
    text = " | ".join(report.problems)
    assert "does not verify with the platform key" in text, text
    assert "1 record(s) missing below seq 3" in text, text
    health = term.services.health()
    assert "本机记录的链或发件箱不一致，请联系技术员" in health.problems
