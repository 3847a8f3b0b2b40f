"""systemd/dlib-wheel.sh: the bundle's x86-64-v3 OpenBLAS dlib only goes onto a CPU that runs it.

The wheel is built with -march=x86-64-v3 on an AVX2 host and dies with SIGILL on an older CPU,
so install.sh --bundle keeps dlib-bin there. The shell functions are run as install.sh runs
them, on fake /proc/cpuinfo files (no root, no systemd host).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

LIBRARY = REPO / "systemd" / "dlib-wheel.sh"
WHEEL = "dlib-20.0.1-cp311-cp311-linux_x86_64.whl"
# The flags line of a Haswell-class CPU (x86-64-v3), as the kernel prints it.
V3_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid "
    "pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand "
    "hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid"
)


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    # Two processors, as on the terminals: only the first flags line is read.
    path.write_text(
        "".join(
            f"processor\t: {n}\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\n\n" for n in (0, 1)
        )
    )
    return path


def without(*flags: str) -> str:
    return " ".join(f for f in V3_FLAGS.split() if f not in flags)


def run(function: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", f'. "{LIBRARY}" && {function} "$@"', "sh", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def wheelhouse(tmp_path: Path, folder: str | None) -> Path:
    """A bundle's wheelhouse: dlib-bin flat, the OpenBLAS dlib in `folder` (None: flat too,
    as bundles made before the target was recorded)."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    (house / "dlib_bin-20.0.1.post1-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    target = house / folder if folder else house
    target.mkdir(exist_ok=True)
    (target / WHEEL).touch()
    return house


def test_a_haswell_class_cpu_runs_x86_64_v3(tmp_path: Path) -> None:
    info = cpuinfo(tmp_path, V3_FLAGS)
    assert run("cpu_has_x86_64_v3", info).returncode == 0
    assert run("dlib_blas_arch", info, "x86_64").stdout.strip() == "x86-64-v3"


@pytest.mark.parametrize("missing", ["avx2", "fma", "bmi2", "movbe", "avx"])
def test_a_cpu_without_one_v3_feature_does_not(tmp_path: Path, missing: str) -> None:
    info = cpuinfo(tmp_path, without(missing))
    assert run("cpu_has_x86_64_v3", info).returncode == 1
    assert run("dlib_blas_arch", info, "x86_64").stdout.strip() == "x86_64"


def test_a_flag_is_matched_as_a_word_not_a_prefix(tmp_path: Path) -> None:
    # avx512f alone must not pass for avx2 (nor avx2 for avx).
    info = cpuinfo(tmp_path, without("avx2") + " avx512f avx2x")
    assert run("cpu_has_x86_64_v3", info).returncode == 1


def test_aarch64_builds_for_itself(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n")
    assert run("dlib_blas_arch", info, "aarch64").stdout.strip() == "aarch64"


def test_the_bundle_wheel_goes_onto_a_v3_cpu(tmp_path: Path) -> None:
    house = wheelhouse(tmp_path, "dlib-blas-x86-64-v3")
    result = run("bundle_dlib_wheel", house, cpuinfo(tmp_path, V3_FLAGS), "x86_64")
    assert result.stdout.strip() == str(house / "dlib-blas-x86-64-v3" / WHEEL)
    assert result.stderr == ""


@pytest.mark.parametrize("missing", ["avx2", "fma"])
def test_without_avx2_or_fma_dlib_bin_stays_and_install_says_so(
    tmp_path: Path, missing: str
) -> None:
    house = wheelhouse(tmp_path, "dlib-blas-x86-64-v3")
    result = run("bundle_dlib_wheel", house, cpuinfo(tmp_path, without(missing)), "x86_64")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "keeping dlib-bin" in result.stderr and "x86-64-v3" in result.stderr


def test_an_older_flat_bundle_is_taken_for_x86_64_v3(tmp_path: Path) -> None:
    house = wheelhouse(tmp_path, None)
    flat = run("bundle_dlib_wheel", house, cpuinfo(tmp_path, V3_FLAGS), "x86_64")
    assert flat.stdout.strip() == str(house / WHEEL)
    old_cpu = run("bundle_dlib_wheel", house, cpuinfo(tmp_path, without("avx2")), "x86_64")
    assert old_cpu.stdout == "" and "keeping dlib-bin" in old_cpu.stderr


def test_a_generic_build_goes_onto_any_cpu_of_its_machine(tmp_path: Path) -> None:
    house = wheelhouse(tmp_path, "dlib-blas-x86_64")
    result = run("bundle_dlib_wheel", house, cpuinfo(tmp_path, without("avx2")), "x86_64")
    assert result.stdout.strip() == str(house / "dlib-blas-x86_64" / WHEEL)
    other = run("bundle_dlib_wheel", house, cpuinfo(tmp_path, V3_FLAGS), "aarch64")
    assert other.stdout == "" and "keeping dlib-bin" in other.stderr


def test_a_bundle_without_the_blas_wheel_installs_dlib_bin(tmp_path: Path) -> None:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    result = run("bundle_dlib_wheel", house, cpuinfo(tmp_path, V3_FLAGS), "x86_64")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_install_sh_and_make_bundle_use_it() -> None:
    install = (REPO / "systemd" / "install.sh").read_text()
    assert "dlib_lib=$SRC/systemd/dlib-wheel.sh" in install and '. "$dlib_lib"' in install
    assert 'dlib_wheel=$(bundle_dlib_wheel "$WHEELS")' in install
    assert "dlib_arch=$(dlib_blas_arch /proc/cpuinfo)" in install
    bundle = (REPO / "systemd" / "make-bundle.sh").read_text()
    assert "wheelhouse/dlib-blas-$dlib_target" in bundle
