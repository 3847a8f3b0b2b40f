"""kiosk-ui.service (cage + Chromium) on the systemd host, and the screen following the hours.

The host has no display: a drop-in gives cage wlroots' headless backend and the pixman renderer
and replaces tty1 (a regular file here) by /dev/null; everything else is the shipped unit. The
screenshot is taken from inside the compositor with grim and kept in tests/systemd/artifacts/.

Two headless outputs, not one: cage 0.1.4 scans a window that covers the whole output out
directly (no compositing). The headless backend accepts Chromium's shared-memory buffers for
that, and wlroots 0.15's damage tracking then leaves the compositor's own buffers at the first
frame it composited, which is what grim (screencopy forces a composited frame) captures: a white
1050x700 window from before the page loaded. With two outputs side by side cage maximizes the
window over both (2560x720), it matches neither output, and every frame is composited. On a
terminal (DRM backend, one panel) scan-out shows Chromium's buffer itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.config import noon_zone
from tests.systemd.host_setup import county_config, host_workdir, install
from tests.systemd.systemd_host import SystemdHost, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("systemd")]

ARTIFACTS = Path(__file__).with_name("artifacts")
HEADLESS = """\
[Service]
TTYPath=
TTYReset=no
TTYVHangup=no
StandardInput=null
StandardOutput=journal
Environment=WLR_BACKENDS=headless WLR_HEADLESS_OUTPUTS=2 WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman
"""
PYTHON = "/opt/haolinju-kiosk/.venv/bin/python"
SCREEN = [PYTHON, "-m", "kiosk.touchscreen.screen_power", "--config",
          "/etc/haolinju-kiosk/config.yaml"]  # fmt: skip
# kiosk/static/kiosk.css: --paper, the page's background, and the header bar (BGR for OpenCV).
PAPER = (0xF3, 0xFA, 0xFD)
HEADER = (0x1A, 0x1A, 0x8B)


@pytest.fixture(scope="module")
def ui_host(uv_cache_for_system_python: None) -> Iterator[SystemdHost]:
    if shutil.which("grim") is None:
        pytest.skip("grim is not installed (make system-deps)")
    workdir = host_workdir("ui-host")
    host = SystemdHost(workdir)
    try:
        with host.boot():
            etc = host.path("/etc/haolinju-kiosk")
            etc.mkdir(parents=True)
            (etc / "config.yaml").write_text(county_config(noon_zone()))
            dropin = host.path("/etc/systemd/system/kiosk-ui.service.d/headless.conf")
            dropin.parent.mkdir(parents=True)
            dropin.write_text(HEADLESS)
            install(host, "--no-blas")
            yield host
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ui_state(host: SystemdHost) -> str:
    return host.show("kiosk-ui.service", "ActiveState")["ActiveState"]


def chromium_running(host: SystemdHost) -> bool:
    return host.run(["pgrep", "-u", "kiosk-ui", "-x", "chromium"], check=False).returncode == 0


def test_touchscreen_shows_the_check_in_page(ui_host: SystemdHost) -> None:
    host = ui_host
    wait_for(lambda: ui_state(host) == "active", 60, "kiosk-ui.service to be active")
    socket = host.path("/run/haolinju-kiosk-ui/wayland-0")
    wait_for(socket.exists, 30, "cage's Wayland socket")
    # Chromium stays up and has painted: the page's background is not the compositor's black.
    wait_for(lambda: chromium_running(host), 30, "Chromium under cage")
    shot = "/run/haolinju-kiosk-ui/screenshot.png"
    problems: list[str] = []

    def painted() -> bool:
        grim = host.run(
            ["runuser", "-u", "kiosk-ui", "--", "env", "XDG_RUNTIME_DIR=/run/haolinju-kiosk-ui",
             "WAYLAND_DISPLAY=wayland-0", "grim", shot],
            check=False,
        )  # fmt: skip
        if grim.returncode != 0 or not chromium_running(host):
            return False
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(host.path(shot), ARTIFACTS / "kiosk-ui.png")
        problems[:] = check_in_page_problems(ARTIFACTS / "kiosk-ui.png")
        return not problems

    try:
        wait_for(painted, 60, "the check-in page on the screen", interval=2)
    except AssertionError as e:
        raise AssertionError(f"{e}: {problems}") from None
    logging.getLogger(__name__).info("screenshot: %s", ARTIFACTS / "kiosk-ui.png")


def check_in_page_problems(png: Path) -> list[str]:
    """What is wrong with a screenshot that should show the check-in page filling the screen."""
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if image is None:
        return [f"{png} is not an image"]
    height, width = image.shape[:2]
    problems = []
    paper = np.all(image == PAPER, axis=2).mean()
    # Its background is the largest area (notices and buttons take the rest).
    if paper < 0.3:
        problems.append(f"page background {paper:.0%} of the screen (< 30%)")
    # The header bar runs across the top...
    if np.all(image[5] == HEADER, axis=1).mean() < 0.5:
        problems.append("no header bar along the top")
    # ...and the window fills the output: no compositor black at its right edge or bottom.
    edges = np.concatenate([image[:, width - 1], image[height - 1]])
    black = np.all(edges == 0, axis=1).mean()
    if black > 0.05:
        problems.append(f"{black:.0%} of the right and bottom edges is black (window smaller)")
    return problems


def test_screen_off_outside_serving_hours_and_on_before_the_slot(ui_host: SystemdHost) -> None:
    host = ui_host
    timer = host.show("kiosk-screen.timer", "ActiveState", "UnitFileState")
    assert timer == {"ActiveState": "active", "UnitFileState": "enabled"}, timer
    tz = noon_zone()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    # The test config serves lunch 11:00-13:30 (local time of `tz`).
    night = f"{today}T03:00:00"
    before_slot = f"{today}T10:50:00"  # inside the 15-minute lead
    host.run([*SCREEN, "--now", night, "auto"])
    assert ui_state(host) == "inactive"
    assert host.systemctl("is-active", "kiosk.service", check=False).stdout.strip() == "active"
    host.run([*SCREEN, "--now", before_slot, "auto"])
    assert ui_state(host) in ("active", "activating")
    # The unit the timer starts does the same under its sandbox, as root, at the real time
    # (12:xx in the test zone: serving).
    host.systemctl("start", "kiosk-screen.service")
    assert host.show("kiosk-screen.service", "Result")["Result"] == "success"
    assert ui_state(host) in ("active", "activating")
    assert "screen on" in host.journal("kiosk-screen.service", "-n", "5"), tz
