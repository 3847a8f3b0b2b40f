"""Helpers for the UI tests (touchscreen pages): Debian's chromium through Playwright, a seeded daemon, and the
caregiver sign-in of the in-process app."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from kiosk.checkin.rules import CheckinRequest, CheckinService, Method
from kiosk.config import load_config
from kiosk.ops.storage import open_store
from kiosk.touchscreen.caregivers import CaregiverBook
from tests.support.daemon import spawn_daemon, start_daemon, stop_daemon, wait_healthy
from tests.support.paths import REPO
from tests.support.roster import elder_row

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "tests" / "artifacts"
VIEWPORT = {"width": 1280, "height": 800}
PIN = "2580"

# Names a Chinese village would have; 1-3 eat every day (regulars), 4 only once.
ROSTER = [
    elder_row(1, name="王秀英", group="一组", contact_phone="13812340001"),
    elder_row(2, name="李建国", group="二组", contact_phone="13812340002"),
    elder_row(3, name="张桂兰", group="一组", contact_phone="13812340003"),
    elder_row(4, name="刘凤英", group="三组", contact_phone="13812340004"),
    elder_row(5, name="陈保国", group="二组", contact_phone="13812340005"),
]


def skip_without_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)")


@dataclass
class Kiosk:
    tmp: Path
    proc: subprocess.Popen[str]
    base: str

    def tap(self, n: int) -> None:
        uid = elder_row(n).card_uid
        httpx.post(f"{self.base}/api/simulate/tap", json={"uid": uid}, timeout=5).raise_for_status()

    def restart(self) -> None:
        """Kill -9 and start again on the same port and data: the page must recover alone."""
        stop_daemon(self.proc)
        self.proc = spawn_daemon(self.tmp / "config.yaml", self.tmp / "data")
        wait_healthy(self.proc, self.base)


def seed_history(tmp: Path, days: int = 5) -> None:
    """Past lunches: elders 1-3 every day, 4 once; a caregiver and a person in charge."""
    config = load_config(tmp / "config.yaml")
    store = open_store(tmp / "data")
    try:
        today = dt.datetime.now(config.site.tz).date()
        for back in range(days, 0, -1):
            at = dt.datetime.combine(today - dt.timedelta(days=back), dt.time(12, 0))
            service = CheckinService(
                config, store, clock=lambda at=at: at.replace(tzinfo=config.site.tz)
            )
            for n in (1, 2, 3) + ((4,) if back == 1 else ()):
                result = service.check_in(
                    CheckinRequest(Method.CARD, card_uid=elder_row(n).card_uid)
                )
                assert result.accepted, result.message
        book = CaregiverBook(store, config.ui, lambda: dt.datetime.now(config.site.tz))
        book.add("赵丽华", "1397", phone="13900002222", role="in_charge")
        book.add("孙桂香", PIN, phone="13900003333")
    finally:
        store.close()


def start_kiosk(tmp: Path) -> Kiosk:
    proc, base = start_daemon(tmp, ROSTER)
    seed_history(tmp)
    return Kiosk(tmp, proc, base)


# Every element that shows its own text must be >= 24 px; every touch target >= 64 px tall.
SMALL_TEXT_JS = """(min) => {
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || !el.getClientRects().length) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (own && parseFloat(style.fontSize) < min)
      bad.push(`${el.tagName}.${el.className} ${style.fontSize} "${el.textContent.trim().slice(0, 20)}"`);
  }
  return bad;
}"""

SMALL_TARGETS_JS = """(min) => {
  const bad = [];
  const targets = document.querySelectorAll('a, button, select, label:has(input), input:not([type=hidden]):not([type=radio]):not([type=checkbox])');
  for (const el of targets) {
    if (!el.getClientRects().length) continue;
    const r = el.getBoundingClientRect();
    if (r.height < min - 0.5 || r.width < min - 0.5)
      bad.push(`${el.tagName}.${el.className} ${Math.round(r.width)}x${Math.round(r.height)} "${el.textContent.trim().slice(0, 20)}"`);
  }
  return bad;
}"""


def check_legible(page) -> None:  # type: ignore[no-untyped-def]
    small_text = page.evaluate(SMALL_TEXT_JS, 24)
    assert not small_text, f"text under 24 px: {small_text}"
    small_targets = page.evaluate(SMALL_TARGETS_JS, 64)
    assert not small_targets, f"touch targets under 64 px: {small_targets}"


def shot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in_client(
    client: TestClient, next_path: str = "/", pin: str = PIN, caregiver_id: str = "C001"
) -> str:
    """Log a caregiver in on this client (browser); returns the CSRF token for the forms that
    follow."""
    token = csrf_of(client.get("/caregiver/login").text)
    resp = client.post(
        "/caregiver/login",
        data={"csrf": token, "caregiver_id": caregiver_id, "pin": pin, "next": next_path},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    return token


def try_sign_in(client: TestClient, pin: str = PIN, next_path: str = "/manual") -> str:
    """Try to log caregiver C001 in: "ok" when the login redirects, else the page it shows."""
    token = csrf_of(client.get(f"/caregiver/login?next={next_path}").text)
    resp = client.post(
        "/caregiver/login",
        data={"csrf": token, "caregiver_id": "C001", "pin": pin, "next": next_path},
        follow_redirects=False,
    )
    return resp.text if resp.status_code != 303 else "ok"


def sign_in_page(page, base: str, next_path: str, name: str = "孙桂香") -> None:  # type: ignore[no-untyped-def]
    """In Chromium: the login page, the caregiver's name, the PIN on the pad; lands on next_path."""
    page.goto(base + next_path)
    assert "/caregiver/login" in page.url
    page.click(f"text={name}")
    for digit in PIN:
        page.click(f".pinpad [data-digit='{digit}']")
    page.click("#login-submit")
    page.wait_for_url(base + next_path)
