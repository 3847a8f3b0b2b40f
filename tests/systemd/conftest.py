"""Fixtures for the installed-path tests: a systemd host with the kiosk installed by install.sh.

The host has no network (its own network namespace, only lo): a village terminal's worst
case. The "online" install path reads packages from this machine's uv cache instead of PyPI
(UV_OFFLINE=1), which `uv_cache_for_system_python` fills first for /usr/bin/python3.11; the
offline bundle path uses nothing but the bundle (tests/systemd/test_bundle.py).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.systemd.systemd_host import SystemdHost, missing_kernel_feature

REPO = Path(__file__).resolve().parents[2]
# The host's lower layer is this machine's /, so the checkout is at the same path inside.
INSTALL = str(REPO / "systemd" / "install.sh")
UV = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
SYSTEM_PYTHON = "/usr/bin/python3.11"
# `make systemd-host-test-blas`: the production dlib (OpenBLAS) instead of --no-blas.
BLAS = os.environ.get("KIOSK_SYSTEMD_BLAS") == "1"
INSTALL_MODE = () if BLAS else ("--no-blas",)
CARD_UID = "A1B2C3D4"


@pytest.fixture(scope="session")
def systemd_host_supported() -> None:
    reason = missing_kernel_feature()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def uv_cache_for_system_python(systemd_host_supported: None) -> None:
    """Every locked wheel (and the build backend) in uv's cache for the system Python."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is not installed (Debian 12's python3.11)")
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="haolinju-uv-warm-") as tmp:
        result = subprocess.run(
            [UV, "sync", "--quiet", "--locked", "--no-dev", "--no-editable", "--python",
             SYSTEM_PYTHON],
            cwd=REPO,
            env={**os.environ, "UV_PROJECT_ENVIRONMENT": f"{tmp}/venv",
                 "UV_PYTHON_DOWNLOADS": "never"},
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def host_workdir(name: str) -> Path:
    # Not under pytest's basetemp: parallel pytest runs prune each other's old basetemp dirs,
    # which would pull the overlay's upper layer from under a running host.
    return Path(tempfile.mkdtemp(dir="/var/tmp", prefix=f"haolinju-{name}-"))


def serving_timezone(now: dt.datetime | None = None) -> str:
    """An IANA zone where it is 12:xx now, so the test config's lunch slot (11:00-13:30) is open."""
    now = now or dt.datetime.now(dt.UTC)
    offset = 12 - now.hour  # local = UTC + offset
    if offset < -12:
        offset += 24
    if offset > 14:
        offset -= 24
    # Etc/GMT zones have the POSIX sign: Etc/GMT-8 is UTC+8.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def county_config(timezone: str) -> str:
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


def id_number(birth: str, serial: str = "123") -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    body = f"141129{birth}{serial}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


def install(host: SystemdHost, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return host.run(["bash", INSTALL, *args], env={"UV_OFFLINE": "1"}, timeout=900, check=check)


@pytest.fixture(scope="module")
def installed_host(uv_cache_for_system_python: None) -> Iterator[SystemdHost]:
    """A host with a county config in place, then `install.sh --no-blas --no-ui` run on it."""
    workdir = host_workdir("host")
    host = SystemdHost(workdir)
    try:
        with host.boot():
            etc = host.path("/etc/haolinju-kiosk")
            etc.mkdir(parents=True)
            (etc / "config.yaml").write_text(county_config(serving_timezone()))
            install(host, *INSTALL_MODE, "--no-ui")
            yield host
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
