"""The touchscreen's backlight follows the serving hours: off at night, on before a slot opens.

A screen lit all night in a village hall wears the panel and draws attention; a screen still
dark when the first elders arrive costs check-ins. kiosk-screen.timer runs
`python -m kiosk.touchscreen.screen_power auto` every 5 minutes as the touchscreen user; it
turns the cage compositor's outputs on from LEAD before each meal (and, when on, cleaning)
window until TAIL after it, and off otherwise, with wlr-randr (wlr-output-management). A tap
on a dark screen is still recorded: readers and the daemon never stop.

    python -m kiosk.touchscreen.screen_power --config /etc/haolinju-kiosk/config.yaml auto
    python -m kiosk.touchscreen.screen_power --config ... on|off|status
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
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
    outputs: tuple[str, ...]
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


def wayland_env() -> dict[str, str]:
    """The compositor socket: WAYLAND_DISPLAY, else the first wayland-N in the runtime dir."""
    env = dict(os.environ)
    runtime = Path(env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    env["XDG_RUNTIME_DIR"] = str(runtime)
    if not env.get("WAYLAND_DISPLAY"):
        sockets = sorted(p.name for p in runtime.glob("wayland-*") if not p.name.endswith(".lock"))
        if sockets:
            env["WAYLAND_DISPLAY"] = sockets[0]
    return env


def list_outputs(env: dict[str, str]) -> list[str] | str:
    """Output names from `wlr-randr` (an error line instead when it cannot ask)."""
    if shutil.which("wlr-randr") is None:
        return "wlr-randr is not installed (apt install wlr-randr)"
    if not env.get("WAYLAND_DISPLAY"):
        return f"no Wayland compositor socket in {env['XDG_RUNTIME_DIR']} (is kiosk-ui running?)"
    result = subprocess.run(
        ["wlr-randr"], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    if result.returncode != 0:
        return f"wlr-randr failed: {result.stderr.strip() or result.returncode}"
    # Output blocks start at column 0 ("HDMI-A-1 "Make Model""); their properties are indented.
    return [
        line.split()[0] for line in result.stdout.splitlines() if line and not line[0].isspace()
    ]


def set_screen(on: bool, env: dict[str, str] | None = None) -> ScreenResult:
    env = env if env is not None else wayland_env()
    outputs = list_outputs(env)
    if isinstance(outputs, str):
        return ScreenResult(False, on, (), outputs)
    if not outputs:
        return ScreenResult(False, on, (), "the compositor reports no outputs")
    for name in outputs:
        result = subprocess.run(
            ["wlr-randr", "--output", name, "--on" if on else "--off"],
            env=env, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            return ScreenResult(False, on, tuple(outputs), f"{name}: {result.stderr.strip()}")
    return ScreenResult(True, on, tuple(outputs))


def screen_is_on(env: dict[str, str] | None = None) -> bool | str:
    """True/False from wlr-randr's "Enabled: yes|no" (an error line when it cannot ask)."""
    env = env if env is not None else wayland_env()
    if isinstance(outputs := list_outputs(env), str):
        return outputs
    result = subprocess.run(
        ["wlr-randr"], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    return "Enabled: yes" in result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiosk.touchscreen.screen_power")
    parser.add_argument("--config", type=Path, default=Path("/etc/haolinju-kiosk/config.yaml"))
    parser.add_argument("--now", help="ISO time to decide for (tests, dry runs)")
    parser.add_argument("action", choices=("auto", "on", "off", "status"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.action == "status":
        state = screen_is_on()
        log.info("screen: %s", state if isinstance(state, str) else ("on" if state else "off"))
        return 0 if isinstance(state, bool) else 1
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
    log.info("screen %s (%s)", "on" if want_on else "off", ", ".join(result.outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
