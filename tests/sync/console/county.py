"""A county on the reference platform for the console tests: townships, points, devices that
upload hand-built signed chains (meals, 助洁, manual check-ins, flagged taps), rosters, and a
browser-less console client that logs in with a token and posts forms with their CSRF token."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import uuid
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.platform.admin_client import enrol_device
from sync.wire import (
    GENESIS_HASH,
    b64encode,
    book_link_hash,
    checkpoint_message,
    link_hash,
    record_message,
)
from tests.security.platform_env import TOWNSHIP_A, County, public_b64

SITE = zoneinfo.ZoneInfo("Asia/Shanghai")
SLOT_TIME = {"breakfast": dt.time(7, 30), "lunch": dt.time(11, 40), "dinner": dt.time(17, 20),
             "day": dt.time(9, 0)}  # fmt: skip


@dataclass
class Terminal:
    """An enrolled device at a point, with its own chain."""

    county: County
    device_id: str
    point_id: str
    key: Ed25519PrivateKey
    token: str
    seq: int = 0
    head: str = GENESIS_HASH
    sent: list[dict[str, Any]] = field(default_factory=list)
    book_seq: int = 0
    book_head: str = GENESIS_HASH

    def record(
        self, day: dt.date, elder: str, *, service: str = "meal", slot: str = "lunch",
        method: str = "card", flags: str = "", reason: str | None = None,
        caregiver: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        self.seq += 1
        fields: dict[str, Any] = {
            "record_id": str(uuid.uuid4()), "seq": self.seq, "device_id": self.device_id,
            "elder_id": elder, "service": service, "slot": slot, "service_date": day,
            "checked_in_at": dt.datetime.combine(day, SLOT_TIME[slot], tzinfo=SITE),
            "method": method, "card_uid": None if method == "manual" else f"C-{elder}",
            "reader": None if method == "manual" else "desk", "distance": None, "margin": None,
            "liveness": None, "flags": flags, "caregiver_id": caregiver, "reason": reason,
        }  # fmt: skip
        digest = link_hash(self.head, fields)
        wire = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in fields.items()}
        rec = {**wire, "prev_hash": self.head, "hash": digest,
               "signature": b64encode(self.key.sign(record_message(digest)))}  # fmt: skip
        self.head = digest
        self.sent.append(rec)
        return rec

    def upload(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"protocol": 1, "device_id": self.device_id,
                "sent_at": dt.datetime.now(dt.UTC).isoformat(), "records": records}  # fmt: skip
        r = self.county.http.post(
            "/v1/records",
            content=gzip.compress(json.dumps(body).encode()),
            headers={"Authorization": f"Bearer {self.token}", "Content-Encoding": "gzip",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        assert len(result["accepted"]) == len(records), result
        return result

    def book(self, kind: str, day: dt.date, body: dict[str, Any], caregiver: str = "C001"
             ) -> dict[str, Any]:  # fmt: skip
        """One entry of the village's books, chained and signed, sent to /v1/books."""
        self.book_seq += 1
        fields: dict[str, Any] = {
            "entry_id": str(uuid.uuid4()), "seq": self.book_seq, "device_id": self.device_id,
            "kind": kind, "entry_date": day,
            "body": json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")),
            "corrects": None, "caregiver_id": caregiver,
            "created_at": dt.datetime.now(dt.UTC),
        }  # fmt: skip
        digest = book_link_hash(self.book_head, fields)
        entry = {
            **{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in fields.items()},
            "prev_hash": self.book_head, "hash": digest,
            "signature": b64encode(self.key.sign(record_message(digest))),
        }  # fmt: skip
        self.book_head = digest
        r = self.county.http.post(
            "/v1/books",
            json={"protocol": 1, "device_id": self.device_id,
                  "sent_at": dt.datetime.now(dt.UTC).isoformat(), "entries": [entry]},
            headers={"Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["accepted"] == [entry["entry_id"]], r.text
        return entry

    def checkpoint(self) -> None:
        made_at = dt.datetime.now(dt.UTC)
        sig = self.key.sign(checkpoint_message(self.device_id, self.seq, self.head, made_at))
        r = self.county.http.post(
            "/v1/checkpoints",
            json={"device_id": self.device_id, "seq": self.seq, "head_hash": self.head,
                  "made_at": made_at.isoformat(timespec="microseconds"),
                  "signature": b64encode(sig)},
            headers={"Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text

    def heartbeat(self, **extra: Any) -> None:
        body = {"device_id": self.device_id, "sent_at": dt.datetime.now(dt.UTC).isoformat(),
                "software_version": "test", "queue_depth": 0, "rejected": 0,
                "chain_head_seq": self.seq, **extra}  # fmt: skip
        r = self.county.http.post(
            "/v1/heartbeat", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        assert r.status_code == 200, r.text


def point(county: County, township: str = TOWNSHIP_A, name: str = "") -> str:
    point_id = "pt-" + uuid.uuid4().hex[:8]
    county.admin.create_point(point_id, township, name)
    return point_id


def terminal(county: County, point_id: str, township: str = TOWNSHIP_A) -> Terminal:
    key = Ed25519PrivateKey.generate()
    device_id = "dev-" + uuid.uuid4().hex[:8]
    code = county.operator_for(township).issue_code(point_id)
    token = enrol_device(county.http, code, device_id, point_id, public_b64(key))
    return Terminal(county, device_id, point_id, key, token)


def publish_roster(county: County, point_id: str, elders: dict[str, tuple[str, str]],
                   township: str = TOWNSHIP_A) -> None:  # fmt: skip
    """elders: elder_id -> (name, status)."""
    body = {"point_id": point_id, "elders": [
        {"elder_id": e, "name": name, "status": status} for e, (name, status) in elders.items()
    ]}  # fmt: skip
    county.operator_for(township)._post("/v1/admin/roster", body, 200)


def elder_ids(prefix: str, n: int) -> list[str]:
    """Elder ids unique to one test (the platform is shared by the tests of a session)."""
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}{tag}-{i}" for i in range(1, n + 1)]


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Console:
    """The console through HTTP as a browser would use it (cookie jar, CSRF from the page)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
        self.csrf = ""

    def login(self, token: str) -> httpx.Response:
        page = self.http.get("/login")
        csrf = CSRF.search(page.text)
        assert csrf, page.text
        r = self.http.post("/login", data={"csrf": csrf.group(1), "token": token})
        if r.status_code == 303:
            home = self.http.get("/")
            match = CSRF.search(home.text)
            assert match, home.text
            self.csrf = match.group(1)
        return r

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(path, data={"csrf": self.csrf, **(data or {})})

    def close(self) -> None:
        self.http.close()


def console_for(county: County, token: str) -> Console:
    """A console signed in with this token (an administrator's or an operator's)."""
    console = Console(county.url)
    assert console.login(token).status_code == 303
    return console
