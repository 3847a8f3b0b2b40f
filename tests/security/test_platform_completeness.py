# ruff: noqa: F401, F811 — pytest fixtures imported from platform_env are used as parameters
"""Issue 12, point 9: rows deleted on the platform side below a signed checkpoint are noticed.

The attack: an insider with access to the platform's database deletes three of a device's
stored records. Before the fix the admin view showed the lower count, no broken links and no
alert. Now the completeness check (on the auditor's view, after each upload/checkpoint, and in
the periodic sweep) raises a `hole` alert whose evidence names the missing seqs and carries the
device-signed checkpoint that proves they existed.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text

from sync.wire import b64decode, checkpoint_message
from tests.security.platform_env import (
    County,
    Device,
    chain,
    checkpoint,
    county,
    upload,
)

N = 20


def delete_rows(county: County, device: Device, seqs: list[int]) -> int:
    engine = create_engine(county.platform.db_url)
    with engine.begin() as conn:
        n = conn.execute(
            text(
                f"DELETE FROM record WHERE device_id = :d AND seq IN ({','.join(map(str, seqs))})"
            ),
            {"d": device.device_id},
        ).rowcount
    engine.dispose()
    return int(n)


def stored_with_checkpoint(county: County) -> tuple[Device, list[dict]]:
    device = county.device()
    records = chain(device, N)
    r = upload(county, device, records)
    assert r.status_code == 200 and len(r.json()["accepted"]) == N, r.text
    r = checkpoint(county, device, N, records[-1]["hash"])
    assert r.json()["status"] == "ok", r.text
    return device, records


def holes(county: County, device: Device) -> list[dict]:
    r = county.as_admin("GET", "/v1/admin/alerts", params={"device_id": device.device_id})
    assert r.status_code == 200, r.text
    return [a for a in r.json() if a["kind"] == "hole"]


def test_rows_deleted_below_a_checkpoint_raise_a_hole_alert_with_evidence(
    county: County,
) -> None:
    device, _ = stored_with_checkpoint(county)
    view = county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()
    assert view["count"] == N and "hole" not in view["alerts"]

    assert delete_rows(county, device, [5, 6, 7]) == 3  # the insider's deletion

    view = county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()
    assert view["count"] == N - 3
    assert view["broken_links"] == []  # what the old view relied on: it sees nothing
    assert "hole" in view["alerts"], view
    [alert] = holes(county, device)
    evidence = alert["evidence"]
    assert evidence["missing_seqs"] == [5, 6, 7] and evidence["missing_count"] == 3
    assert alert["point_id"] == device.point_id
    # The evidence holds up on its own: the checkpoint verifies with the device's key.
    cp = evidence["checkpoint"]
    assert cp["seq"] == N
    import datetime as dt

    message = checkpoint_message(
        device.device_id, cp["seq"], cp["head_hash"], dt.datetime.fromisoformat(cp["made_at"])
    )
    device.key.public_key().verify(b64decode(cp["signature"]), message)

    # Looking again does not pile up copies of the same alert.
    county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records")
    assert len(holes(county, device)) == 1


def test_the_sweep_finds_deletions_without_anyone_looking(county: County) -> None:
    device, _ = stored_with_checkpoint(county)
    delete_rows(county, device, [N])  # even the head itself
    r = county.as_admin("POST", "/v1/admin/verify")
    assert r.status_code == 200, r.text
    assert r.json()["alerts_raised"] >= 1
    [alert] = holes(county, device)
    assert alert["evidence"]["missing_seqs"] == [N]


def test_deletion_above_the_contiguous_mark_is_counted(county: County) -> None:
    """Records 1-5 and 8-10 held (6, 7 never arrived): deleting 9 still shows."""
    device = county.device()
    records = chain(device, 10)
    kept = records[:5] + records[7:]
    assert len(upload(county, device, kept).json()["accepted"]) == 8
    delete_rows(county, device, [9])
    county.as_admin("POST", "/v1/admin/verify")
    r = county.as_admin("GET", "/v1/admin/alerts", params={"device_id": device.device_id})
    deleted = [a for a in r.json() if a["kind"] == "records_deleted"]
    assert deleted and deleted[0]["evidence"] == {"held_count": 8, "stored": 7}, r.json()


def test_records_a_checkpoint_committed_to_that_never_arrive_become_a_hole(tmp_path) -> None:
    """Seqs 4-10 are under a signed checkpoint but never uploaded: a gap while reconciliation
    may still bring them, a hole alert once the grace period is over."""
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from fastapi.testclient import TestClient

    from sync.platform.admin_client import AdminClient, enrol_device
    from sync.platform.app import create_platform_app
    from sync.platform.state import Limits
    from tests.security.platform_env import ADMIN_TOKEN, public_b64

    now = [dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)]
    app = create_platform_app(
        f"sqlite:///{tmp_path / 'p.db'}", Ed25519PrivateKey.generate(), ADMIN_TOKEN,
        clock=lambda: now[0], limits=Limits(verify_interval_s=0),
    )  # fmt: skip
    http = TestClient(app)
    admin = AdminClient(http, ADMIN_TOKEN)
    admin.create_point("pt-g", "t")
    code = AdminClient(http, admin.create_operator("op-g", "t")).issue_code("pt-g")
    key = Ed25519PrivateKey.generate()
    token = enrol_device(http, code, "dev-g", "pt-g", public_b64(key))
    device = Device("dev-g", "pt-g", key, token)
    fake = County(None, http, admin, admin, admin)  # type: ignore[arg-type]
    records = chain(device, 10)
    assert len(upload(fake, device, records[:3]).json()["accepted"]) == 3
    assert checkpoint(fake, device, 10, records[-1]["hash"]).json()["status"] == "ok"

    def hole_alerts() -> list[dict]:
        alerts = fake.as_admin("GET", "/v1/admin/alerts", params={"kind": "hole"}).json()
        return [a for a in alerts if a["device_id"] == "dev-g"]

    fake.as_admin("POST", "/v1/admin/verify")
    assert hole_alerts() == []  # within the grace period: the records may still come
    now[0] += dt.timedelta(hours=25)
    fake.as_admin("POST", "/v1/admin/verify")
    [alert] = hole_alerts()
    assert alert["evidence"]["missing_seqs"] == list(range(4, 11))
    assert alert["evidence"]["checkpoint"]["seq"] == 10
