"""The unit files: `systemd-analyze verify` and the offline security exposure score."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

UNITS = REPO / "systemd"
# Exposure on systemd-analyze's 0-10 scale (x10 for --threshold). kiosk-ui runs Chromium,
# whose own sandbox needs user namespaces, W+X memory for V8 and unfiltered syscalls.
MAX_EXPOSURE = {
    "kiosk.service": 2.5,
    "kiosk-maintenance.service": 2.5,
    "kiosk-ui.service": 4.0,
    "kiosk-screen.service": 2.5,
}

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@pytest.fixture(scope="module")
def installed_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units as install.sh lays them out, with ExecStart pointing at this checkout's venv."""
    out = tmp_path_factory.mktemp("units")
    venv_bin = f"{REPO / '.venv' / 'bin'}/"
    for unit in UNITS.glob("kiosk*"):
        text = unit.read_text().replace("/opt/haolinju-kiosk/.venv/bin/", venv_bin)
        (out / unit.name).write_text(text)
    return out


def test_every_unit_verifies(installed_units: Path) -> None:
    units = sorted(str(p) for p in installed_units.iterdir())
    assert len(units) == 6
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_security_exposure_within_budget(installed_units: Path, unit: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE[unit] * 10)}",
         str(installed_units / unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert score, result.stdout[-500:]
    assert float(score.group(1)) <= MAX_EXPOSURE[unit]
    assert result.returncode == 0, result.stdout[-500:]


def test_service_is_notify_with_watchdog_and_credentials() -> None:
    text = (UNITS / "kiosk.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "StateDirectory=haolinju-kiosk",
        "LoadCredential=device-token:/etc/haolinju-kiosk/credentials/device-token",
        "ProtectSystem=strict",
        "DevicePolicy=closed",
        "SystemCallFilter=@system-service",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line


def test_install_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(UNITS / "install.sh")], timeout=30).returncode == 0
    if shutil.which("shellcheck"):
        # -x: follow install.sh's and make-bundle.sh's `. dlib-wheel.sh`.
        scripts = [str(UNITS / name) for name in ("install.sh", "make-bundle.sh")]
        result = subprocess.run(
            ["shellcheck", "-x", *scripts], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout
