"""Is the system clock synchronised? Terminals often have no RTC battery.

Asked by the daemon's main loop once a minute (never on the tap path); records made while the
clock is known to be unsynchronised carry the flag `clock_unsynced`, and the screen says so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def clock_synchronised() -> bool | None:
    """True/False when the system can tell, None when it cannot (no systemd, container)."""
    if shutil.which("timedatectl"):
        try:
            out = subprocess.run(
                ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True, text=True, timeout=5, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip() in ("yes", "no"):
            return out.stdout.strip() == "yes"
    if TIMESYNCD_FLAG.exists():
        return True
    return None
