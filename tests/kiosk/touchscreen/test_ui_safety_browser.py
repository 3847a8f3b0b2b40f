"""In chromium against `kiosk run`: the status bar, the 留样 reminder, the ledger entry flow
(both forms under a minute of taps), the printable 台账, and the enrolment/binding screens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.daemon import start_daemon, stop_daemon
from tests.support.paths import face_data_dir
from tests.support.ui import (
    PIN,
    ROSTER,
    Kiosk,
    check_legible,
    seed_history,
    shot,
    skip_without_chromium,
)

# The module shares one daemon and one Chromium: keep it on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_safety_browser")]

# A second reader that is not plugged in: the status bar must say so, and what to do.
READERS = (
    "readers:\n"
    "  - {kind: simulated, name: desk}\n"
    "  - {kind: serial, name: door, device: /dev/ttyUSB-not-there}\n"
)


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    skip_without_chromium()
    tmp = tmp_path_factory.mktemp("safety-ui")
    faces = face_data_dir()
    camera = ""
    if faces is not None and (faces / "short_hamilton_clip.mp4").exists():
        clip = faces / "short_hamilton_clip.mp4"
        camera = f'camera: {{enabled: true, source: "{clip}", loop: true}}\n'
    proc, base = start_daemon(tmp, ROSTER, readers=READERS, extra_config=camera)
    seed_history(tmp)
    kiosk = Kiosk(tmp, proc, base)
    yield kiosk
    stop_daemon(kiosk.proc)


def sign_in(page, kiosk: Kiosk, next_path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(kiosk.base + next_path)
    assert "/caregiver/login" in page.url
    page.click("text=孙桂香")
    for digit in PIN:
        page.click(f".pinpad [data-digit='{digit}']")
    page.click("#login-submit")
    page.wait_for_url(kiosk.base + next_path)


def test_status_bar_and_the_sample_reminder(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    page.goto(kiosk.base + "/")
    page.wait_for_function("document.querySelectorAll('#status-items li').length >= 6")
    reader = page.text_content("#status-items [data-key=reader]")
    assert "读卡器未连接（door）" in reader
    assert "请检查读卡器连线" in page.text_content("#status-todo")
    assert "未接入平台" in page.text_content("#status-items [data-key=platform]")
    assert page.is_visible("#reminder")
    assert "今天还没有登记留样" in page.text_content("#reminder")
    check_legible(page)
    shot(page, "statusbar-reminder")


def test_ledger_entry_flow(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, kiosk, "/safety")
    check_legible(page)
    shot(page, "safety-todo")
    # 留样: lunch is chosen (open now) and the time filled in; type the dishes, save
    page.click("#sample-button")
    assert page.is_checked("input[name=slot][value=lunch]")
    check_legible(page)
    page.fill("#dishes", "红烧肉、炒白菜、米饭")
    shot(page, "safety-sample")
    page.click("#sample-submit")
    page.wait_for_selector("#safety-saved")
    assert "留样已登记" in page.text_content("#safety-saved")
    # weekly inspection: all fine in one tap, then gas has a problem that was fixed
    page.click("#inspection-button")
    page.click("#all-ok")
    page.click("tr[data-item=gas] .toggle-problem")
    page.fill("#problems", "灶台软管老化")
    page.fill("#fixed", "已换新软管")
    check_legible(page)
    shot(page, "safety-inspection")
    page.click("#inspection-submit")
    page.wait_for_selector("#safety-saved")
    assert "燃气 ✗" in page.text_content("#inspection-card")
    shot(page, "safety-done")
    # the reminder is gone from the check-in view
    page.goto(kiosk.base + "/")
    page.wait_for_function("document.querySelectorAll('#status-items li').length >= 6")
    assert page.is_hidden("#reminder")
    # the printable monthly ledger
    page.goto(kiosk.base + "/safety/ledger")
    assert "红烧肉、炒白菜、米饭" in page.text_content("#sample-ledger")
    assert "灶台软管老化" in page.text_content("#inspection-ledger")
    shot(page, "safety-ledger")
    page.emulate_media(media="print")
    shot(page, "safety-ledger-print")
    pdf = page.pdf(format="A4")
    assert pdf[:4] == b"%PDF"


def test_enrolment_and_card_binding_screens(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, kiosk, "/enrol")
    page.fill("input[name=q]", "cbg")
    page.click("form.search button[type=submit]")
    page.click("text=陈保国")
    camera = httpx.get(kiosk.base + "/api/health", timeout=5).json()["camera"]["state"]
    if camera != "disabled":
        page.wait_for_function(
            "['ok','several_faces','face_too_small','no_face','blurred','too_dark','too_bright','pose']"
            ".includes(document.getElementById('quality').dataset.state)",
            timeout=15000,
        )
        page.wait_for_function("document.getElementById('preview').naturalWidth > 0")
    check_legible(page)
    shot(page, "enrol-face")
    # card binding: start, tap a new card on the simulated reader, see it bound
    page.click("#mode-card")
    page.click("#bind-start")
    page.wait_for_function("document.getElementById('bind-prompt').textContent.includes('请刷卡')")
    shot(page, "bind-waiting")
    httpx.post(kiosk.base + "/api/simulate/tap", json={"uid": "B00000AA"}, timeout=5)
    page.wait_for_selector("#bind-result.flash-ok")
    assert "绑定给陈保国" in page.text_content("#bind-result")
    check_legible(page)
    shot(page, "bind-done")
