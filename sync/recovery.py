"""`kiosk recover --from-platform`: put back the records the platform holds and this terminal
lost (deleted by hand, or an old backup restored), so that a rolled-back chain reaches the
platform's acknowledged checkpoint again and check-in can resume.

Nothing the platform sends is trusted on its word: the page must carry the platform's receipt
(signature over the ids), each record must continue the local chain exactly (prev_hash), its
content must hash to its hash, and its signature must verify with THIS device's key: so the
platform can give back only what this terminal itself signed. All restored rows go in one
transaction, marked uploaded under the page's receipt; a hole or a fork stops the recovery
with what was found (a fork means the terminal recorded other meals at the same seq: that is
for the county, not for a script).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from models.chain import CHAINED_FIELDS, link_hash
from models.db import Store
from models.records import chain_head
from models.tables import MealRecord, Outbox, PlatformReceipt
from sync.client import PlatformClient
from sync.signing import DeviceKey, PlatformVerifier
from sync.wire import HeldRecord, HeldRecords

log = logging.getLogger(__name__)

PAGE = 500


@dataclass(frozen=True)
class RecoveryResult:
    restored: int
    head_seq: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _fields(held: HeldRecord) -> dict[str, Any]:
    body = json.loads(held.body)
    fields = {name: body.get(name) for name in CHAINED_FIELDS}
    fields["service_date"] = dt.date.fromisoformat(str(fields["service_date"]))
    fields["checked_in_at"] = dt.datetime.fromisoformat(str(fields["checked_in_at"]))
    return fields


def _check_page(  # noqa: PLR0911 — one return per check reads as the list of checks
    page: HeldRecords,
    device_id: str,
    after: tuple[int, str],
    key: DeviceKey,
    platform: PlatformVerifier | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The page's records as MealRecord fields, or why they cannot be restored."""
    stamp = page.server_time.isoformat(timespec="microseconds")
    ids = [h.record_id for h in page.records]
    if page.device_id != device_id:
        return [], f"the platform answered for device {page.device_id!r}"
    if platform is not None and not platform.receipt_ok(device_id, stamp, ids, page.receipt):
        return [], "the platform's answer does not verify with platform.public_key"
    rows: list[dict[str, Any]] = []
    seq, prev = after
    for held in page.records:
        if held.seq != seq + 1:
            return rows, f"the platform holds no record at seq {seq + 1} (a hole there too)"
        if held.prev_hash != prev:
            return rows, f"fork at seq {held.seq}: it does not continue this terminal's chain"
        fields = _fields(held)
        if fields["record_id"] != held.record_id or fields["seq"] != held.seq:
            return rows, f"seq {held.seq}: the body does not match its id and seq"
        if link_hash(held.prev_hash, fields) != held.hash:
            return rows, f"seq {held.seq}: content does not match its hash"
        if not key.record_ok(held.hash, held.signature):
            return rows, f"seq {held.seq}: not signed by this terminal's key"
        rows.append({**fields, "prev_hash": held.prev_hash, "hash": held.hash,
                     "signature": held.signature})  # fmt: skip
        seq, prev = held.seq, held.hash
    return rows, None


def recover_from_platform(
    store: Store,
    client: PlatformClient,
    key: DeviceKey,
    device_id: str,
    platform: PlatformVerifier | None,
    now: dt.datetime,
) -> RecoveryResult:
    """Restore every record the platform holds after the local head; PlatformError on failure."""
    with store.read() as session:
        head = chain_head(session)
    restored = 0
    while True:
        page = client.held_records(head[0], PAGE)
        if not page.records:
            return RecoveryResult(restored, head[0])
        rows, problem = _check_page(page, device_id, head, key, platform)
        if problem is not None:
            log.error("recovery stopped at seq %d: %s", head[0], problem)
            return RecoveryResult(restored, head[0], problem)
        try:
            with store.write() as session:
                receipt = PlatformReceipt(
                    kind="recovery",
                    device_id=device_id,
                    server_time=page.server_time.isoformat(timespec="microseconds"),
                    record_ids=json.dumps(sorted(r["record_id"] for r in rows)),
                    signature=page.receipt,
                    received_at=now,
                )
                session.add(receipt)
                session.flush()
                for row in rows:
                    session.add(MealRecord(**row))
                session.flush()  # records before the outbox rows that reference them
                for row in rows:
                    session.add(
                        Outbox(
                            record_id=row["record_id"],
                            attempts=0,
                            uploaded_at=now,
                            receipt_id=receipt.id,
                        )
                    )
        except IntegrityError as exc:
            why = f"seq {rows[0]['seq']}..: cannot be stored here ({exc.orig})"
            return RecoveryResult(restored, head[0], why)
        restored += len(rows)
        head = (rows[-1]["seq"], rows[-1]["hash"])
        log.info("restored %d records from the platform, head now seq %d", len(rows), head[0])
