"""`install.sh --bundle FILE` on a systemd host with no network at all (`make
systemd-host-test-bundle` builds the bundle first and passes it in KIOSK_BUNDLE).

The host's network namespace has only lo, and uv's cache and uv itself are hidden under empty
tmpfs mounts inside the host, so everything installed comes out of the bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.support.config import noon_zone
from tests.systemd.host_setup import county_config, host_workdir
from tests.systemd.systemd_host import SystemdHost, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("systemd")]

ARTIFACTS = Path(__file__).with_name("artifacts")


@pytest.fixture(scope="module")
def bundle(systemd_host_supported: None) -> Path:
    path = os.environ.get("KIOSK_BUNDLE")
    if not path:
        pytest.skip("no bundle given: `make systemd-host-test-bundle` builds one (needs network)")
    return Path(path).resolve()


def test_bundle_installs_with_no_network(bundle: Path) -> None:
    workdir = host_workdir("bundle-host")
    host = SystemdHost(workdir)
    try:
        with host.boot():
            # Nothing from this machine's caches: uv's cache, uv itself, pip's cache.
            for hidden in ("/root/.cache", "/root/.local"):
                host.run(["mount", "-t", "tmpfs", "tmpfs", hidden])
            routes = host.run(["ip", "-o", "route"], check=False).stdout.strip()
            assert routes == "", f"the host must have no route out: {routes}"
            etc = host.path("/etc/haolinju-kiosk")
            etc.mkdir(parents=True)
            (etc / "config.yaml").write_text(county_config(noon_zone()))
            started = time.monotonic()
            result = host.run(
                ["bash", str(bundle.parent.parent / "systemd" / "install.sh"), "--bundle",
                 str(bundle), "--no-ui"],
                env={"HOME": "/root"}, timeout=1800,
            )  # fmt: skip
            install_s = time.monotonic() - started

            def serving() -> bool:
                props = host.show("kiosk.service", "ActiveState", "SubState")
                return props == {"ActiveState": "active", "SubState": "running"}

            wait_for(serving, 90, "kiosk.service READY after the bundle install")
            page = host.run(
                ["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                 "http://127.0.0.1:8080/"]
            )  # fmt: skip
            assert page.stdout == "200"
            real = host.run(["readlink", "-f", "/opt/haolinju-kiosk/.venv/bin/python"]).stdout
            assert real.strip() == "/usr/bin/python3.11"
            blas = host.run(
                ["/opt/haolinju-kiosk/.venv/bin/python", "-I", "-c",
                 "import dlib; print(dlib.DLIB_USE_BLAS)"]
            ).stdout.strip()  # fmt: skip
            ARTIFACTS.mkdir(exist_ok=True)
            figures = {
                "bundle": bundle.name,
                "bundle_mb": round(bundle.stat().st_size / 1e6, 1),
                "install_s": round(install_s, 1),
                "dlib_blas": blas == "True",
                "install_tail": result.stdout[-600:],
            }
            (ARTIFACTS / "bundle-install.json").write_text(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
