"""The county card list's strong ETag (version + signature) and If-None-Match -> 304, on the
reference platform under uvicorn (SQLite and PostgreSQL), and the kiosk's pull that sends the
tag of the list it holds: a 304 leaves county_cards.json untouched and notes the check."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiosk.ops.storage import open_store
from sync.county_cards import CHECKED_NAME, list_path, list_status, lookup, pull_county_cards
from sync.signing import PlatformVerifier, default_key_path, generate_device_key
from sync.wire import CountyCardsPayload, county_cards_etag
from tests.support.outbox import Kiosk
from tests.support.platform import Platform
from tests.support.roster import TZ

NOW = dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ)


@pytest.fixture
def home(platform: Platform, tmp_path: Path) -> Iterator[Kiosk]:
    """Another point of the county, whose elders are visitors to `kiosk`'s point."""
    store = open_store(tmp_path / "home" / "data")
    key = generate_device_key(default_key_path(store.db_path.parent))
    device_id, point_id = "dev-" + uuid.uuid4().hex[:10], "pt-" + uuid.uuid4().hex[:8]
    token = platform.register(device_id, point_id, key)
    yield Kiosk(store, key, default_key_path(store.db_path.parent), device_id, point_id, token)
    store.close()


def _publish(platform: Platform, point_id: str, n: int, tag: str = "") -> list[str]:
    """n elders with cards at `point_id`; their card numbers."""
    tag = tag or uuid.uuid4().hex[:6].upper()
    elders = [
        {"elder_id": f"V{tag}-{i}", "name": "王外点", "card_uid": f"E{tag}{i:05d}",
         "status": "active"}
        for i in range(n)
    ]  # fmt: skip
    r = platform.operator("POST", "/v1/admin/roster", json={"point_id": point_id, "elders": elders})
    assert r.status_code == 200, r.text
    return [str(e["card_uid"]) for e in elders]


def _get(platform: Platform, token: str | None, etag: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if etag:
        headers["If-None-Match"] = etag
    return httpx.get(platform.url + "/v1/county-cards", headers=headers, timeout=30)


def test_etag_is_version_and_signature_and_304_only_when_it_matches(
    platform: Platform, kiosk: Kiosk, home: Kiosk
) -> None:
    _publish(platform, home.point_id, 3)
    first = _get(platform, kiosk.token)
    assert first.status_code == 200, first.text
    signed = first.json()
    version = CountyCardsPayload.model_validate_json(signed["payload"]).version
    etag = county_cards_etag(version, signed["signature"])
    assert first.headers["etag"] == etag and etag.startswith(f'"{version}-')
    # Nothing published since: the same bytes (a stable payload), so the same strong tag.
    again = _get(platform, kiosk.token)
    assert again.content == first.content and again.headers["etag"] == etag

    for sent in (etag, f"W/{etag}", f'"0-stale", {etag}', "*"):
        r = _get(platform, kiosk.token, sent)
        assert r.status_code == 304, (sent, r.status_code)
        assert r.content == b"" and r.headers["etag"] == etag
    assert _get(platform, kiosk.token, '"0-stale"').status_code == 200

    # Auth before anything: the right tag without a valid device token learns nothing.
    for token in (None, "not-a-device-token"):
        r = _get(platform, token, etag)
        assert r.status_code == 401, (token, r.status_code)
        assert "etag" not in r.headers

    # A publish changes version and signature: the old tag now gets the new list.
    _publish(platform, home.point_id, 1)
    changed = _get(platform, kiosk.token, etag)
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    newer = CountyCardsPayload.model_validate_json(changed.json()["payload"]).version
    assert newer > version


def test_kiosk_pull_sends_its_tag_and_a_304_rewrites_nothing(
    platform: Platform, kiosk: Kiosk, home: Kiosk
) -> None:
    n = 400
    cards = _publish(platform, home.point_id, n)
    verifier = PlatformVerifier.from_b64(platform.public_key)
    client = kiosk.client(platform.url)
    # The bytes each pull moved over the wire (the response bodies, as received).
    seen: list[httpx.Response] = []
    client._http.event_hooks["response"].append(seen.append)

    first = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW, str.upper)
    assert first.status == "applied" and first.cards >= n
    path = list_path(kiosk.store)
    held = json.loads(path.read_text(encoding="utf-8"))
    assert held["etag"] == seen[-1].headers["etag"]
    full_list = seen[-1].num_bytes_downloaded
    assert full_list > n * 40, full_list  # every card of the county: tens of bytes each
    before = path.stat()

    later = NOW + dt.timedelta(minutes=15)
    second = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, later, str.upper)
    assert second.status == "unchanged", second
    assert (second.version, second.cards) == (first.version, first.cards)
    assert seen[-1].status_code == 304
    assert seen[-1].request.headers["if-none-match"] == held["etag"]
    assert seen[-1].num_bytes_downloaded == 0  # the whole list saved on this pull
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size
    )  # fmt: skip
    assert lookup(kiosk.store, cards[0]) is not None

    status = list_status(kiosk.store)
    assert status.checked_at == later and status.last_outcome == "unchanged"
    assert status.version == first.version and status.cards == first.cards
    checked = json.loads((path.parent / CHECKED_NAME).read_text(encoding="utf-8"))
    assert checked["outcome"] == "unchanged"

    # A publish elsewhere in the county: the next pull brings the new list and a new tag.
    new_cards = _publish(platform, home.point_id, 2)
    third = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, later, str.upper)
    assert third.status == "applied" and third.version is not None
    assert first.version is not None and third.version > first.version
    assert lookup(kiosk.store, new_cards[1]) is not None
    assert json.loads(path.read_text(encoding="utf-8"))["etag"] == seen[-1].headers["etag"]
    assert list_status(kiosk.store).last_outcome == "applied"


def test_a_list_held_without_a_tag_is_fetched_whole(
    platform: Platform, kiosk: Kiosk, home: Kiosk
) -> None:
    """A list kept before ETags (no `etag` in the file): no If-None-Match, the list comes."""
    _publish(platform, home.point_id, 2)
    verifier = PlatformVerifier.from_b64(platform.public_key)
    client = kiosk.client(platform.url)
    assert pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW).status == (
        "applied"
    )
    path = list_path(kiosk.store)
    doc = json.loads(path.read_text(encoding="utf-8"))
    del doc["etag"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    seen: list[httpx.Response] = []
    client._http.event_hooks["response"].append(seen.append)
    out = pull_county_cards(kiosk.store, client, verifier, kiosk.point_id, NOW)
    assert out.status == "applied"
    assert "if-none-match" not in seen[-1].request.headers and seen[-1].status_code == 200
    assert "etag" in json.loads(path.read_text(encoding="utf-8"))
