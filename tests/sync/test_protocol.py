"""Checkpoints, reconciliation, roster pull, heartbeat and the scheduler against the platform."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel
from sqlalchemy import select, text

from hardware.backoff import Backoff
from kiosk.checkin.rules import CheckinRequest, CheckinService, Method, Outcome
from models.tables import AuditEvent, Elder, Outbox
from sync import wire
from sync.checkpoint import make_checkpoint, push_checkpoint
from sync.heartbeat import HeartbeatExtras, build_heartbeat
from sync.reconcile import reconcile
from sync.roster_pull import current_roster_version, pull_roster
from sync.scheduler import SyncRunner, start_sync_jobs
from sync.signing import PlatformVerifier, generate_device_key
from sync.uploader import pending_count
from tests.support.faultproxy import FaultProxy
from tests.support.outbox import Kiosk, add_records
from tests.support.platform import Platform
from tests.support.roster import TZ, Clock
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow
NOW = dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_is_cheap_and_catches_rewritten_history(
    platform: Platform, kiosk: Kiosk
) -> None:
    add_records(kiosk.store, kiosk.device_id, 5)
    client = kiosk.client(platform.url)
    assert push_checkpoint(kiosk.store, client, kiosk.key, kiosk.device_id, NOW).status == "ok"
    # Pushed again unchanged: still ok (stored once).
    assert push_checkpoint(kiosk.store, client, kiosk.key, kiosk.device_id, NOW).status == "ok"

    # Someone rewrites seq 5 (content and hash) before it was uploaded: the checkpoint catches it.
    import sqlite3

    from models.chain import link_hash

    with kiosk.store.read() as session:
        from models.tables import MealRecord

        rec = session.scalars(select(MealRecord).where(MealRecord.seq == 5)).one()
        fields = {c: getattr(rec, c) for c in wire.CHAINED_FIELDS}
    fields["slot"] = "dinner"
    conn = sqlite3.connect(kiosk.store.db_path)
    conn.execute("DROP TRIGGER meal_record_append_only")
    conn.execute(
        "UPDATE meal_record SET slot='dinner', hash=? WHERE seq=5",
        (link_hash(rec.prev_hash, fields),),
    )
    conn.commit()
    conn.close()
    result = kiosk.uploader(platform.url).run_round()
    assert (result.accepted, result.rejected) == (4, 1)
    # The rewritten record's signature (made at insert over the old hash) no longer verifies:
    # the platform rejects it as forged before it even compares it with the checkpoint.
    assert {"forged"} & {a["kind"] for a in platform.alerts(kiosk.device_id)}
    # And a new checkpoint on the rewritten head is flagged as a conflict.
    conflict = push_checkpoint(kiosk.store, client, kiosk.key, kiosk.device_id, NOW)
    assert conflict.status == "conflict"


def test_forged_checkpoint_refused(platform: Platform, kiosk: Kiosk, tmp_path: Path) -> None:
    other = generate_device_key(tmp_path / "x.key")
    cp = make_checkpoint(kiosk.store, other, kiosk.device_id, NOW)
    from sync.client import PlatformError

    with pytest.raises(PlatformError) as err:
        kiosk.client(platform.url).post_checkpoint(cp)
    assert err.value.status == 400


# ----------------------------------------------------------------------------- reconciliation


def test_reconciliation_resends_what_the_platform_lost(platform: Platform, kiosk: Kiosk) -> None:
    add_records(kiosk.store, kiosk.device_id, 120)  # 50 per day: 2026-01-01..03
    assert kiosk.uploader(platform.url).run_round().accepted == 120
    client = kiosk.client(platform.url)
    days = (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert reconcile(kiosk.store, client, *days, NOW).differing == []

    # The platform loses three records of Jan 2 (a restored backup, an operator's mistake).
    lost = _platform_delete(platform, kiosk.device_id, [60, 61, 99])
    assert lost == 3
    result = reconcile(kiosk.store, client, *days, NOW)
    assert [(d.service_date, d.local, d.platform, d.resent) for d in result.differing] == [
        (dt.date(2026, 1, 2), 50, 47, 3)
    ]
    assert pending_count(kiosk.store) == 3
    again = kiosk.uploader(platform.url).run_round()
    assert (again.accepted, again.duplicate) == (3, 0)
    held = platform.records(kiosk.device_id)
    assert held["count"] == 120 and held["broken_links"] == []
    assert reconcile(kiosk.store, client, *days, NOW).differing == []


def _platform_delete(platform: Platform, device_id: str, seqs: list[int]) -> int:
    from sqlalchemy import create_engine

    engine = create_engine(platform.db_url)
    with engine.begin() as conn:
        n = conn.execute(
            text(
                f"DELETE FROM record WHERE device_id = :d AND seq IN ({','.join(map(str, seqs))})"
            ),
            {"d": device_id},
        ).rowcount
    engine.dispose()
    return n


# ----------------------------------------------------------------------------- roster


def publish(platform: Platform, point_id: str, *elders: dict) -> int:
    r = platform.operator(
        "POST", "/v1/admin/roster", json={"point_id": point_id, "elders": list(elders)}
    )
    assert r.status_code == 200, r.text
    return r.json()["version"]


def elder(n: int, **kw: object) -> dict:
    return {"elder_id": f"R{n:03d}", "name": f"老人{n}", "card_uid": f"{0xB0000000 + n:08X}", **kw}


@pytest.fixture
def verifier(platform: Platform) -> PlatformVerifier:
    return PlatformVerifier.from_b64(platform.public_key)


def test_roster_incremental_and_removal_refused_at_checkin(
    platform: Platform,
    kiosk: Kiosk,
    verifier: PlatformVerifier,
    services,
    clock: Clock,
) -> None:
    client = kiosk.client(platform.url)
    assert pull_roster(kiosk.store, client, verifier, kiosk.point_id, NOW).status == "unchanged"
    v1 = publish(platform, kiosk.point_id, elder(1), elder(2))
    out = pull_roster(kiosk.store, client, verifier, kiosk.point_id, NOW)
    assert (out.status, out.version, out.elders) == ("applied", v1, 2)
    assert pull_roster(kiosk.store, client, verifier, kiosk.point_id, NOW).status == "unchanged"

    # Elder 2 died: the delta carries only him, with his new status.
    v2 = publish(platform, kiosk.point_id, elder(2, status="deceased"))
    out = pull_roster(kiosk.store, client, verifier, kiosk.point_id, NOW)
    assert (out.status, out.version, out.elders) == ("applied", v2, 1)
    assert current_roster_version(kiosk.store) == v2

    checkin = CheckinService(services.config, kiosk.store, clock=clock)
    ok = checkin.check_in(CheckinRequest(Method.CARD, card_uid=f"{0xB0000001:08X}"))
    gone = checkin.check_in(CheckinRequest(Method.CARD, card_uid=f"{0xB0000002:08X}"))
    assert ok.outcome is Outcome.ACCEPTED
    assert gone.outcome is Outcome.REFUSED


def _signed(platform_key_path: Path, payload: dict) -> bytes:
    key = serialization.load_pem_private_key(platform_key_path.read_bytes(), password=None)
    text_ = json.dumps(payload)
    sig = wire.b64encode(key.sign(wire.roster_message(text_)))  # type: ignore[union-attr]
    return json.dumps({"payload": text_, "signature": sig}).encode()


def _ok(body: bytes) -> tuple[str, bytes]:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return ("canned", head.encode() + body)


@pytest.fixture
def proxy(platform: Platform) -> Iterator[FaultProxy]:
    p = FaultProxy(platform.port)
    yield p
    p.close()


def test_bad_rosters_are_refused_and_old_kept(
    platform: Platform, kiosk: Kiosk, verifier: PlatformVerifier, proxy: FaultProxy, tmp_path: Path
) -> None:
    v1 = publish(platform, kiosk.point_id, elder(1))
    client = kiosk.client(proxy.url)
    assert pull_roster(kiosk.store, client, verifier, kiosk.point_id, NOW).status == "applied"
    base = {
        "point_id": kiosk.point_id, "version": v1 + 1, "since": v1,
        "issued_at": "2026-12-02T03:00:00Z",
        "elders": [{"elder_id": "R001", "name": "冒名", "status": "active"}],
    }  # fmt: skip
    good = _signed(platform.key_path, base)
    wrong_key = generate_device_key(tmp_path / "evil.key").private
    evil_text = json.dumps(base)
    evil = json.dumps(
        {
            "payload": evil_text,
            "signature": wire.b64encode(wrong_key.sign(wire.roster_message(evil_text))),
        }
    ).encode()
    cases = {
        "unsigned": json.dumps({"payload": json.dumps(base)}).encode(),
        "empty signature": json.dumps({"payload": json.dumps(base), "signature": ""}).encode(),
        "wrong key": evil,
        "tampered after signing": json.dumps(
            {
                "payload": json.dumps({**base, "version": v1 + 5}),
                "signature": json.loads(good)["signature"],
            }
        ).encode(),
        "truncated": good[: len(good) // 2],
        "older version": _signed(platform.key_path, {**base, "version": v1}),
        "unknown field": _signed(platform.key_path, {**base, "subsidy_rate": 12}),
        "other point": _signed(platform.key_path, {**base, "point_id": "elsewhere"}),
        "gap in deltas": _signed(platform.key_path, {**base, "since": v1 + 1, "version": v1 + 2}),
    }
    for name, body in cases.items():
        proxy.add(_ok(body))
        with kiosk.client(proxy.url) as fresh:  # a new connection takes the next canned answer
            out = pull_roster(kiosk.store, fresh, verifier, kiosk.point_id, NOW)
        assert (out.status, out.version) == ("refused", v1), name
        with kiosk.store.read() as session:
            assert session.get(Elder, "R001").name == "老人1", name  # type: ignore[union-attr]
    with kiosk.store.read() as session:
        refusals = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "roster_refused")
        ).all()
    assert len(refusals) == len(cases)
    # The genuine one is accepted.
    proxy.add(_ok(good))
    assert (
        pull_roster(kiosk.store, kiosk.client(proxy.url), verifier, kiosk.point_id, NOW).status
        == "applied"
    )


# ----------------------------------------------------------------------------- heartbeat, privacy


def test_heartbeat_reaches_platform(platform: Platform, kiosk: Kiosk) -> None:
    add_records(kiosk.store, kiosk.device_id, 3)
    hb = build_heartbeat(
        kiosk.store, kiosk.device_id, dt.datetime(2026, 1, 1, 13, 0, tzinfo=TZ),
        software_version="0.1.0", location=(37.86, 112.55), clock_offset_s=0.2,
        extras=lambda: HeartbeatExtras(["CG01"], {"desk": "ok"}, "disabled"),
    )  # fmt: skip
    assert hb.headcount == {"meal/lunch": 3}
    assert hb.queue_depth == 3 and hb.oldest_unsent_age_s == 5400
    ack = kiosk.client(platform.url).heartbeat(hb)
    assert ack.server_time.tzinfo is not None


FORBIDDEN = ("face", "template", "encoding", "image", "photo", "frame", "snapshot", "embedding")


def _field_names(schema: dict) -> set[str]:
    names: set[str] = set()
    for part in [schema, *schema.get("$defs", {}).values()]:
        names |= set(part.get("properties", {}))
    return names


@pytest.mark.parametrize(
    "model",
    [
        m
        for m in vars(wire).values()
        if isinstance(m, type)
        and issubclass(m, BaseModel)
        and m.__module__ == "sync.wire"
        and m is not wire.Wire
    ],
)
def test_no_face_data_or_images_on_any_payload(model: type[BaseModel]) -> None:
    names = _field_names(model.model_json_schema())
    assert not [n for n in names if any(f in n.lower() for f in FORBIDDEN)]
    assert model.model_config.get("extra") == "forbid"  # nothing can ride along unnoticed


# ----------------------------------------------------------------------------- scheduler


def test_runner_backs_off_on_retry_after(
    platform: Platform, kiosk: Kiosk, proxy: FaultProxy
) -> None:
    add_records(kiosk.store, kiosk.device_id, 3)
    client = kiosk.client(proxy.url)
    clock = [0.0]
    runner = SyncRunner(
        kiosk.store, client, kiosk.uploader(proxy.url), device_id=kiosk.device_id,
        point_id=kiosk.point_id, verifier=None, clock=lambda: NOW,
        backoff=Backoff(base=1, cap=30, monotonic=lambda: clock[0]),
    )  # fmt: skip
    proxy.add(
        (
            "canned",
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 300\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
    )
    assert runner.upload_job() is False
    seen = proxy.connections
    assert runner.upload_job() is False and runner.heartbeat_job() is False
    assert proxy.connections == seen  # held off: nothing was sent
    clock[0] = 302
    assert runner.upload_job() is True
    assert pending_count(kiosk.store) == 0


def test_start_sync_jobs_runs_every_job(platform: Platform, kiosk: Kiosk) -> None:
    add_records(kiosk.store, kiosk.device_id, 7)
    publish(platform, kiosk.point_id, elder(5))
    jobs = start_sync_jobs(
        kiosk.store, device_id=kiosk.device_id, point_id=kiosk.point_id,
        platform_url=platform.url, token=kiosk.token, key_path=kiosk.key_path,
        backoff=Backoff(5, 900), platform_public_key=platform.public_key, upload_interval_s=3600,
        checkpoint_interval_s=3600, roster_interval_s=3600, reconcile_interval_s=3600,
        heartbeat_interval_s=3600, software_version="test",
    )  # fmt: skip
    try:
        now = dt.datetime.now(dt.UTC)
        for job in jobs.scheduler.get_jobs():
            job.modify(next_run_time=now)
        wait_until(lambda: pending_count(kiosk.store) == 0, "the upload job", timeout=60)
        wait_until(lambda: current_roster_version(kiosk.store) >= 1, "the roster job", timeout=60)
        wait_until(
            lambda: jobs.runner.state.last_success_at is not None, "a job success", timeout=60
        )
    finally:
        jobs.shutdown()
    assert platform.records(kiosk.device_id)["count"] == 7
    with kiosk.store.read() as session:
        assert session.scalars(select(Outbox.uploaded_at)).all()
