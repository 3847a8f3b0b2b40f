"""Roaming elders (全城通): the signed county card list, visitor meals, and the county-wide
one-meal-per-slot rule, against the reference platform on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from hardware.backoff import Backoff
from kiosk.checkin.rules import CheckinRequest, CheckinService, Method, Outcome, Refusal
from kiosk.config import KioskConfig, RoamingConfig
from kiosk.ops.storage import open_store
from models.tables import AuditEvent, Elder, MealRecord
from sync.county_cards import held_version, lookup, pull_county_cards
from sync.platform import settlement
from sync.platform.tables import Record
from sync.roster_pull import pull_roster
from sync.scheduler import SyncRunner
from sync.signing import PlatformVerifier, default_key_path, generate_device_key
from sync.wire import CountyCardsPayload, SignedRoster, county_cards_message, verify
from tests.support.outbox import Kiosk
from tests.support.platform import Platform
from tests.support.roster import TZ, Clock
from tests.support.wait import wait_until

NOW = dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ)


def _card() -> str:
    """A card number of its own per test: the platform of a backend is shared by the session."""
    return "C" + uuid.uuid4().hex[:7].upper()


def _publish(
    platform: Platform, point_id: str, elder_id: str, card: str, status: str = "active"
) -> None:
    elder = {"elder_id": elder_id, "name": "王外点", "card_uid": card, "status": status}
    r = platform.operator(
        "POST", "/v1/admin/roster", json={"point_id": point_id, "elders": [elder]}
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def home(platform: Platform, tmp_path: Path) -> Iterator[Kiosk]:
    """A second point of the county (the visitor's home), with its own registered kiosk."""
    store = open_store(tmp_path / "home" / "data")
    key_path = default_key_path(store.db_path.parent)
    key = generate_device_key(key_path)
    device_id, point_id = "dev-" + uuid.uuid4().hex[:10], "pt-" + uuid.uuid4().hex[:8]
    token = platform.register(device_id, point_id, key)
    yield Kiosk(store, key, key_path, device_id, point_id, token)
    store.close()


def _config(config: KioskConfig, k: Kiosk, on: bool) -> KioskConfig:
    """The kiosk's config as `k` (its device and point), visitors accepted or not."""
    return config.model_copy(
        update={
            "roaming": RoamingConfig(accept_visitors=on),
            "site": config.site.model_copy(update={"point_id": k.point_id}),
            "device": config.device.model_copy(update={"device_id": k.device_id}),
        }
    )


def test_signed_list_served_verified_and_tampered_refused(
    platform: Platform, kiosk: Kiosk, home: Kiosk
) -> None:
    elder_id, card = "V" + uuid.uuid4().hex[:8], _card()
    _publish(platform, home.point_id, elder_id, card.lower())
    verifier = PlatformVerifier.from_b64(platform.public_key)
    client = kiosk.client(platform.url)

    signed = client.county_cards()
    assert verify(verifier.public_key, county_cards_message(signed.payload), signed.signature)
    payload = CountyCardsPayload.model_validate_json(signed.payload)
    assert (card.lower(), elder_id, home.point_id, "王外点") in payload.cards

    out = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW, str.upper)
    assert out.status == "applied"
    found = lookup(kiosk.store, card)
    assert found is not None and (found.elder_id, found.home_point) == (elder_id, home.point_id)

    # Tampered (a card moved to another elder), unsigned, or not JSON: refused, list kept.
    doc = json.loads(signed.payload)
    doc["cards"][0][1] = "SOMEONE-ELSE"
    bad = [
        SignedRoster(payload=json.dumps(doc), signature=signed.signature),
        SignedRoster(payload=signed.payload, signature="AAAA"),
        SignedRoster(
            payload="not json",
            signature=signed.signature,
        ),
    ]
    for tampered in bad:
        client.county_cards = lambda t=tampered, **_: t  # type: ignore[method-assign,misc]
        out = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW, str.upper)
        assert out.status == "refused"
    found_after = lookup(kiosk.store, card)
    assert found_after == found
    with kiosk.store.read() as session:
        kinds = session.scalars(
            select(AuditEvent.kind).where(AuditEvent.kind == "county_cards_refused")
        ).all()
    assert len(kinds) == 3


def test_visitor_meal_flagged_when_on_refused_when_off_and_settled_once(
    platform: Platform, kiosk: Kiosk, home: Kiosk, config: KioskConfig, clock: Clock
) -> None:
    elder_id, card = "V" + uuid.uuid4().hex[:8], _card()
    _publish(platform, home.point_id, elder_id, card)
    forgot = "V" + uuid.uuid4().hex[:8]  # another elder of that point, without his card today
    _publish(platform, home.point_id, forgot, _card())
    verifier = PlatformVerifier.from_b64(platform.public_key)
    client = kiosk.client(platform.url)
    # The daemon's periodic job (started only where roaming.accept_visitors is on).
    runner = SyncRunner(
        kiosk.store, client, kiosk.uploader(platform.url), device_id=kiosk.device_id,
        point_id=kiosk.point_id, verifier=verifier, clock=lambda: NOW,
        backoff=Backoff(base=1, cap=30),
    )  # fmt: skip
    assert runner.county_cards_job() is True
    tap = CheckinRequest(Method.CARD, card_uid=card)

    off = CheckinService(_config(config, kiosk, False), kiosk.store, clock=clock).check_in(tap)
    assert (off.outcome, off.refusal) == (Outcome.REFUSED, Refusal.UNKNOWN_CARD)

    service = CheckinService(_config(config, kiosk, True), kiosk.store, clock=clock)
    ok = service.check_in(tap)
    assert ok.outcome is Outcome.ACCEPTED, ok.message
    assert "visitor" in ok.flags
    assert f"外点老人 · 来自{home.point_id}" in ok.message
    assert service.check_in(tap).outcome is Outcome.DUPLICATE
    by_hand = CheckinRequest(
        Method.MANUAL, elder_id=forgot, caregiver_id="C001", reason="forgot_card"
    )
    manual = service.check_in(by_hand)
    assert manual.outcome is Outcome.ACCEPTED, manual.message
    with kiosk.store.read() as session:
        record = session.scalars(select(MealRecord).where(MealRecord.elder_id == elder_id)).one()
        assert record.flags == "visitor"
        assert session.get(Elder, elder_id).status == "visitor"  # type: ignore[union-attr]
        record = session.scalars(select(MealRecord).where(MealRecord.elder_id == forgot)).one()
        assert (record.method, record.flags, record.reason) == ("manual", "visitor", "forgot_card")

    # The same elder eats the same lunch at home too: one subsidised, one exception naming both.
    home_client = home.client(platform.url)
    home_cfg = _config(config, home, False)
    pull_roster(home.store, home_client, verifier, home.point_id, NOW)
    clock.set("11:35")
    at_home = CheckinService(home_cfg, home.store, clock=clock).check_in(tap)
    assert at_home.outcome is Outcome.ACCEPTED, at_home.message
    for k in (kiosk, home):
        assert k.uploader(platform.url).run_round().ok

    engine = create_engine(platform.db_url)
    devices = (kiosk.device_id, home.device_id)

    def verified() -> bool:  # unverified device signatures are never paid (deferred check)
        with Session(engine) as session:
            return not session.scalar(
                select(func.count())
                .select_from(Record)
                .where(Record.device_id.in_(devices), Record.signature_ok.is_(None))
            )

    wait_until(verified, "the platform to verify the device signatures", timeout=30)
    with Session(engine) as session:
        month = settlement.compute(
            session, f"{ok.service_date:%Y-%m}", [kiosk.point_id, home.point_id]
        )
    engine.dispose()
    # The visitor who forgot his card: a manual check-in, listed apart for the county.
    assert not [ln for ln in month.lines if ln.elder_id == forgot]
    by_hand_exc = [e for e in month.exceptions if e.elder_id == forgot]
    assert [(e.kind, e.point_id) for e in by_hand_exc] == [("manual", kiosk.point_id)]
    paid = [ln for ln in month.lines if ln.elder_id == elder_id]
    dups = [e for e in month.exceptions if e.elder_id == elder_id]
    assert sum(ln.count for ln in paid) == 1
    assert paid[0].point_id == kiosk.point_id  # the visitor meal was received first
    assert [e.kind for e in dups] == ["duplicate"]
    assert dups[0].point_id == home.point_id
    assert kiosk.point_id in dups[0].detail and home.point_id in dups[0].detail


def test_older_signed_list_replayed_is_refused_and_the_newer_one_kept(
    platform: Platform, kiosk: Kiosk, home: Kiosk
) -> None:
    """The rollback attack: a genuine, correctly signed list captured before a card was
    withdrawn (the elder died) is replayed to the kiosk after the withdrawal reached it."""
    elder_id = "V" + uuid.uuid4().hex[:8]
    card = "D" + uuid.uuid4().hex[:7].upper()
    _publish(platform, home.point_id, elder_id, card)
    verifier = PlatformVerifier.from_b64(platform.public_key)
    client = kiosk.client(platform.url)
    old = client.county_cards()  # what an attacker on the network keeps
    assert pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW).status == (
        "applied"
    )
    assert lookup(kiosk.store, card) is not None

    _publish(platform, home.point_id, elder_id, card, status="deceased")
    new = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW)
    old_version = CountyCardsPayload.model_validate_json(old.payload).version
    assert new.status == "applied" and new.version is not None and new.version > old_version
    assert lookup(kiosk.store, card) is None

    client.county_cards = lambda **_: old  # type: ignore[method-assign]
    replay = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW)
    assert replay.status == "refused", replay
    assert "older list" in replay.detail
    assert lookup(kiosk.store, card) is None  # the withdrawal stands
    assert held_version(kiosk.store) == new.version
    with kiosk.store.read() as session:
        why = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.kind == "county_cards_refused")
        ).all()
    assert [json.loads(w)["why"] for w in why] == [replay.detail]

    # The same version again (nothing published since) is the same list: taken.
    client.county_cards = lambda **_: new_signed  # type: ignore[method-assign]
    new_signed = kiosk.client(platform.url).county_cards()
    assert pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW).status == (
        "applied"
    )
