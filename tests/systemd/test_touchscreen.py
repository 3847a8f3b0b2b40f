"""kiosk-ui.service (cage + Chromium) on the systemd host, and the screen following the hours.

The host has no display: a drop-in gives cage wlroots' headless backend and the pixman renderer
and replaces tty1 (a regular file here) by /dev/null; everything else is the shipped unit. The
screenshot is taken from inside the compositor with grim and kept in tests/systemd/artifacts/.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

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
Environment=WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman
"""
PYTHON = "/opt/haolinju-kiosk/.venv/bin/python"
SCREEN = [PYTHON, "-m", "kiosk.touchscreen.screen_power", "--config",
          "/etc/haolinju-kiosk/config.yaml"]  # fmt: skip


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


@pytest.mark.xfail(
    strict=True,
    reason="Chromium 156 (Debian 12 security updates) dies with SIGTRAP right after connecting "
    "to cage 0.1.4 (wlroots 0.15), on the headless backend here and on this machine outside "
    "the host too; the screenshot stays black. Seen 2026-12-01, see docs/install.md.",
)
def test_touchscreen_shows_the_check_in_page(ui_host: SystemdHost) -> None:
    host = ui_host
    wait_for(lambda: ui_state(host) == "active", 60, "kiosk-ui.service to be active")
    socket = host.path("/run/haolinju-kiosk-ui/wayland-0")
    wait_for(socket.exists, 30, "cage's Wayland socket")
    # Chromium stays up and has painted: the page's background is not the compositor's black.
    wait_for(lambda: chromium_running(host), 30, "Chromium under cage")
    shot = "/run/haolinju-kiosk-ui/screenshot.png"

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
        colours = host.run(
            [PYTHON, "-I", "-c",
             f"from PIL import Image; print(len(Image.open('{shot}').convert('RGB').getcolors(1 << 20) or []))"],
        ).stdout  # fmt: skip
        return int(colours.strip() or 0) > 20

    wait_for(painted, 45, "the check-in page on the screen", interval=2)
    logging.getLogger(__name__).info("screenshot: %s", ARTIFACTS / "kiosk-ui.png")


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
