"""Fixtures for the installed-path tests: a systemd host with the kiosk installed by install.sh.

The host has no network (its own network namespace, only lo): a village terminal's worst
case. The "online" install path reads packages from this machine's uv cache instead of PyPI
(UV_OFFLINE=1), which `uv_cache_for_system_python` fills first for /usr/bin/python3.11; the
offline bundle path uses nothing but the bundle (tests/systemd/test_bundle.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.config import noon_zone
from tests.support.paths import REPO
from tests.systemd.host_setup import (
    INSTALL_MODE,
    SYSTEM_PYTHON,
    UV,
    county_config,
    host_workdir,
    install,
)
from tests.systemd.systemd_host import SystemdHost, missing_kernel_feature


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


@pytest.fixture(scope="module")
def installed_host(uv_cache_for_system_python: None) -> Iterator[SystemdHost]:
    """A host with a county config in place, then `install.sh --no-blas --no-ui` run on it."""
    workdir = host_workdir("host")
    host = SystemdHost(workdir)
    try:
        with host.boot():
            etc = host.path("/etc/haolinju-kiosk")
            etc.mkdir(parents=True)
            (etc / "config.yaml").write_text(county_config(noon_zone()))
            install(host, *INSTALL_MODE, "--no-ui")
            yield host
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
