"""The touchscreen follows the serving hours: dark at night, lit again before a slot opens.

A screen lit all night in a village hall wears the panel and draws attention; a screen still
dark when the first elders arrive costs check-ins. kiosk-screen.timer runs
`python -m kiosk.touchscreen.screen_power auto` every 5 minutes (as root): from LEAD before each
meal (and, when on, cleaning) window until TAIL after it the touchscreen unit runs; otherwise it
is stopped and the console blanked, which powers the display down (fbcon blanking -> DPMS off).

Debian 12's cage (0.1.4) implements neither wlr-output-management nor output-power-management,
so switching the output off inside the compositor (wlr-randr, wlopm) is not possible there;
stopping kiosk-ui.service is. Readers and the daemon never stop: a tap on a dark screen is
still recorded and spoken.

    python -m kiosk.touchscreen.screen_power --config /etc/haolinju-kiosk/config.yaml auto
    python -m kiosk.touchscreen.screen_power on|off|status
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kiosk.config import KioskConfig, load_config

log = logging.getLogger(__name__)

LEAD = dt.timedelta(minutes=15)  # on this long before a window opens (timer runs every 5 min)
TAIL = dt.timedelta(minutes=15)  # late diners and the caregiver's end-of-slot check


@dataclass(frozen=True)
class ScreenResult:
    ok: bool
    want_on: bool
    units: tuple[str, ...]
    detail: str = ""


def serving_windows(config: KioskConfig, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
    """The day's screen-on windows (local time), slots widened by LEAD and TAIL."""
    slots = list(config.meal.slots) if config.meal.enabled else []
    if config.cleaning.enabled:
        slots += config.cleaning.slots
    tz = config.site.tz
    return [
        (
            dt.datetime.combine(day, slot.start, tz) - LEAD,
            dt.datetime.combine(day, slot.end, tz) + TAIL,
        )
        for slot in slots
    ]


def screen_should_be_on(config: KioskConfig, now: dt.datetime) -> bool:
    local = now.astimezone(config.site.tz)
    # Yesterday's windows too: a window widened by TAIL can run past midnight.
    days = (local.date() - dt.timedelta(days=1), local.date(), local.date() + dt.timedelta(days=1))
    return any(start <= local < end for day in days for start, end in serving_windows(config, day))


UI_UNIT = "kiosk-ui.service"
CONSOLE = Path("/dev/tty1")


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, timeout=60, check=False
    )


def screen_is_on() -> bool:
    return _systemctl("is-active", "--quiet", UI_UNIT).returncode == 0


def _blank_console(blank: bool) -> None:
    # setterm talks to the kernel console (TIOCLINUX); fbcon blanking powers the display down.
    # Best effort: a terminal without a console (or a test host) has nothing to blank.
    if not CONSOLE.is_char_device():
        return
    with CONSOLE.open("w") as tty:
        subprocess.run(
            ["setterm", "--term", "linux", "--blank", "force" if blank else "poke"],
            stdout=tty, stdin=tty, capture_output=False, timeout=10, check=False,
        )  # fmt: skip


def set_screen(on: bool) -> ScreenResult:
    if on:
        _blank_console(False)
        result = _systemctl("start", UI_UNIT)
    else:
        result = _systemctl("stop", UI_UNIT)
        # A touchscreen that had crashed stays "failed" after stop; cleared here, so the night
        # reads as "off" and the morning's start is not refused by the crash's start limit.
        _systemctl("reset-failed", UI_UNIT)
    if result.returncode != 0:
        return ScreenResult(False, on, (UI_UNIT,), result.stderr.strip() or "systemctl failed")
    if not on:
        _blank_console(True)
    return ScreenResult(True, on, (UI_UNIT,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiosk.touchscreen.screen_power")
    parser.add_argument("--config", type=Path, default=Path("/etc/haolinju-kiosk/config.yaml"))
    parser.add_argument("--now", help="ISO time to decide for (tests, dry runs)")
    parser.add_argument("action", choices=("auto", "on", "off", "status"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.action == "status":
        log.info("screen: %s", "on" if screen_is_on() else "off")
        return 0
    if args.action == "auto":
        config = load_config(args.config)
        now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=config.site.tz)
        want_on = screen_should_be_on(config, now)
    else:
        want_on = args.action == "on"
    result = set_screen(want_on)
    if not result.ok:
        log.error("screen %s: %s", "on" if want_on else "off", result.detail)
        return 1
    log.info("screen %s (%s)", "on" if want_on else "off", ", ".join(result.units))
    return 0


if __name__ == "__main__":
    sys.exit(main())
