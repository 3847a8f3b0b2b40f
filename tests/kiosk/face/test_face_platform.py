# ruff: noqa: F401, F811 — pytest fixtures imported from platform_env are used as parameters
"""The platform shows which liveness check each face record passed (issue 15).

Records as a kiosk sends them (chained, signed): face check-ins with liveness "parallax" and
"off", and a card check-in; the county's view of the device counts the face records by the
check they passed, read from the signed body.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sync.wire import GENESIS_HASH, b64encode, link_hash, record_message
from tests.security.platform_env import SITE, County, Device, county, upload


def face_record(device: Device, seq: int, prev: str, method: str, liveness: str | None) -> Any:
    at = dt.datetime(2026, 11, 30, 11, 30, tzinfo=SITE)
    fields: dict[str, Any] = {
        "record_id": str(uuid.uuid4()), "seq": seq, "device_id": device.device_id,
        "elder_id": f"E{seq:04d}", "service": "meal", "slot": "lunch",
        "service_date": at.date(), "checked_in_at": at, "method": method,
        "card_uid": None, "reader": None if method == "face" else "desk",
        "distance": 0.3 if method == "face" else None,
        "margin": 0.4 if method == "face" else None,
        "liveness": liveness, "flags": "", "caregiver_id": None, "reason": None,
    }  # fmt: skip
    digest = link_hash(prev, fields)
    signature = b64encode(device.key.sign(record_message(digest)))
    wire = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in fields.items()}
    return {**wire, "prev_hash": prev, "hash": digest, "signature": signature}


def test_the_platform_counts_face_records_by_liveness(county: County) -> None:
    device = county.device()
    records, prev = [], GENESIS_HASH
    for seq, (method, liveness) in enumerate(
        [("face", "parallax"), ("face", "parallax"), ("face", "off"), ("card", None)], start=1
    ):
        rec = face_record(device, seq, prev, method, liveness)
        records.append(rec)
        prev = rec["hash"]
    result = upload(county, device, records).json()
    assert len(result["accepted"]) == 4, result
    view = county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()
    assert view["face_liveness"] == {"parallax": 2, "off": 1}
