"""What the installed-path tests put on a systemd host: the county config, a roster, and
install.sh run offline (a plain module; the fixtures that use it are in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.paths import REPO
from tests.support.roster import id_number
from tests.systemd.systemd_host import SystemdHost

# The host's lower layer is this machine's /, so the checkout is at the same path inside.
INSTALL = str(REPO / "systemd" / "install.sh")
UV = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
SYSTEM_PYTHON = "/usr/bin/python3.11"
# `make systemd-host-test-blas`: the production dlib (OpenBLAS) instead of --no-blas.
BLAS = os.environ.get("KIOSK_SYSTEMD_BLAS") == "1"
INSTALL_MODE = () if BLAS else ("--no-blas",)
CARD_UID = "A1B2C3D4"


def host_workdir(name: str) -> Path:
    # Not under pytest's basetemp: parallel pytest runs prune each other's old basetemp dirs,
    # which would pull the overlay's upper layer from under a running host.
    return Path(tempfile.mkdtemp(dir="/var/tmp", prefix=f"haolinju-{name}-"))


def county_config(timezone: str) -> str:
    """The repository's config.yaml in `timezone` (tests.support.config.noon_zone() keeps the
    lunch slot open), reading cards from the virtual PC/SC reader."""
    text = (REPO / "config.yaml").read_text()
    text = text.replace("timezone: Asia/Shanghai", f"timezone: {timezone}")
    text = text.replace(
        "readers:\n  - kind: simulated\n    name: desk\n    service: meal\n",
        "readers:\n  - kind: pcsc\n    name: desk\n    service: meal\n"
        '    options: {reader_filter: "Virtual PCD 00 00"}\n',
    )
    assert "kind: pcsc" in text and f"timezone: {timezone}" in text
    return text


def roster_csv() -> str:
    return (
        "elder_id,name,id_number,card_uid,agreement_signed\n"
        f"E0001,王秀英,{id_number('19450302')},{CARD_UID},是\n"
    )


def install(host: SystemdHost, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return host.run(["bash", INSTALL, *args], env={"UV_OFFLINE": "1"}, timeout=900, check=check)
