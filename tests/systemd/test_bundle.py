"""`install.sh --bundle FILE` on a systemd host with no network at all (`make
systemd-host-test-bundle` builds the bundle first and passes it in KIOSK_BUNDLE).

The host's network namespace has only lo, and uv's cache and uv itself are hidden under empty
tmpfs mounts inside the host, so everything installed comes out of the bundle.

KIOSK_HOST_LOWER (`make systemd-host-test-bare`): the host's lower layer is that directory, a
bare Debian 12 made by debootstrap (minbase + systemd), instead of this machine's root, with the
checkout (install.sh, the bundle) shown read-only at its own path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import time
from pathlib import Path, PurePosixPath

import pytest

from tests.support.config import noon_zone
from tests.support.paths import REPO
from tests.systemd.host_setup import county_config, host_workdir
from tests.systemd.systemd_host import SystemdHost, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("systemd")]

RESULTS = REPO / "bench" / "results"


@pytest.fixture(scope="module")
def bundle(systemd_host_supported: None) -> Path:
    path = os.environ.get("KIOSK_BUNDLE")
    if not path:
        pytest.skip("no bundle given: `make systemd-host-test-bundle` builds one (needs network)")
    return Path(path).resolve()


def bundle_host(name: str) -> SystemdHost:
    lower = os.environ.get("KIOSK_HOST_LOWER")
    if not lower:
        return SystemdHost(host_workdir(name))
    return SystemdHost(host_workdir(name), lower=Path(lower), binds=[REPO])


def blas_target(bundle: Path) -> str | None:
    """The target the bundle's OpenBLAS dlib was built for (None: the bundle has only dlib-bin)."""
    with tarfile.open(bundle) as tar:
        for name in tar.getnames():
            path = PurePosixPath(name)
            if path.parts[0] == "wheelhouse" and path.name.startswith("dlib-"):
                folder = path.parent.name
                return folder.removeprefix("dlib-blas-") if folder != "wheelhouse" else "x86-64-v3"
    return None


def install_bundle(host: SystemdHost, bundle: Path) -> tuple[str, float]:
    """install.sh --bundle as a technician runs it, with nothing of this machine's caches."""
    for hidden in ("/root/.cache", "/root/.local"):
        host.run(["mkdir", "-p", hidden])
        host.run(["mount", "-t", "tmpfs", "tmpfs", hidden])
    routes = host.run(["ip", "-o", "route"], check=False).stdout.strip()
    assert routes == "", f"the host must have no route out: {routes}"
    etc = host.path("/etc/haolinju-kiosk")
    etc.mkdir(parents=True)
    (etc / "config.yaml").write_text(county_config(noon_zone()))
    started = time.monotonic()
    result = host.run(
        ["bash", str(REPO / "systemd" / "install.sh"), "--bundle",
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
    return result.stdout + result.stderr, install_s


def dlib_uses_blas(host: SystemdHost) -> bool:
    out = host.run(
        ["/opt/haolinju-kiosk/.venv/bin/python", "-I", "-c",
         "import dlib; print(dlib.DLIB_USE_BLAS)"]
    ).stdout.strip()  # fmt: skip
    return out == "True"


# apt unpacks the whole .deb closure on a bare Debian: minutes, not the default 120 s.
@pytest.mark.timeout(1800)
def test_bundle_installs_with_no_network(bundle: Path) -> None:
    host = bundle_host("bundle-host")
    workdir = host.workdir
    try:
        with host.boot():
            output, install_s = install_bundle(host, bundle)
            real = host.run(["readlink", "-f", "/opt/haolinju-kiosk/.venv/bin/python"]).stdout
            assert real.strip() == "/usr/bin/python3.11"
            blas = dlib_uses_blas(host)
            target = blas_target(bundle)
            # This machine runs x86-64-v3: the bundle's OpenBLAS dlib, when it has one, goes in.
            assert blas == (target is not None), (target, output[-1500:])
            figures = {
                "bundle": bundle.name,
                "bundle_mb": round(bundle.stat().st_size / 1e6, 1),
                "install_s": round(install_s, 1),
                "dlib_blas": blas,
                "dlib_blas_target": target,
                "install_tail": output[-600:],
                "lower_layer": str(host.lower),
            }
            name = "bundle-install.json" if host.lower == Path("/") else "bundle-install-bare.json"
            # Committed beside the benchmark results: the README quotes these figures.
            (RESULTS / name).write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.timeout(1800)
def test_bundle_on_a_cpu_without_avx2_keeps_dlib_bin(bundle: Path) -> None:
    """The x86-64-v3 dlib would die with SIGILL there: install.sh keeps dlib-bin and says so.
    The host sees a /proc/cpuinfo without avx2 and fma (bind-mounted over its own)."""
    if blas_target(bundle) != "x86-64-v3":
        pytest.skip("the bundle has no x86-64-v3 OpenBLAS dlib (make dlib-blas on an AVX2 host)")
    host = bundle_host("bundle-old-cpu")
    workdir = host.workdir
    try:
        with host.boot():
            real = Path("/proc/cpuinfo").read_text()
            old = re.sub(r"(?m)^(flags\s*:.*)$", lambda m: re.sub(r" (avx2|fma)\b", "", m[1]), real)
            assert " avx2" not in old and " fma" not in old
            fake = host.path("/root/cpuinfo-without-avx2")
            fake.write_text(old)
            host.run(["mount", "--bind", "/root/cpuinfo-without-avx2", "/proc/cpuinfo"])
            assert " avx2" not in host.run(["cat", "/proc/cpuinfo"]).stdout
            output, _ = install_bundle(host, bundle)
            assert "keeping dlib-bin" in output, output[-1500:]
            assert not dlib_uses_blas(host)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
