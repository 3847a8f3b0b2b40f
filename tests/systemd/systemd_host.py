"""A real systemd as PID 1 in its own namespaces, over an overlay of this machine's root.

The host is built by boot_host.sh: new PID, mount, cgroup and network namespaces (only lo), an
overlay whose lower layer is / and whose upper layer is a temporary directory, its own /proc,
/sys, cgroup2 and a minimal /dev, and fresh tmpfs on /tmp, /run and /var/tmp. Tests drive it
from outside with nsenter, as a technician would from a shell on the terminal.

SAFETY: systemd booted against the real root empties the host's /tmp (systemd-tmpfiles at
boot). boot_host.sh refuses to exec systemd unless the overlay's /tmp is a fresh tmpfs that
cannot see a canary file created here in the host's /tmp, and `stop()` (always called from a
finally) SIGKILLs the namespace's PID 1, which takes every process of the namespace with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

BOOT_SCRIPT = Path(__file__).with_name("boot_host.sh")
CGROUP2 = Path("/sys/fs/cgroup/unified")


def missing_kernel_feature() -> str | None:  # noqa: PLR0911 (one return per reason)
    """Why a systemd host cannot run on this machine, in one line (None when it can)."""
    if os.geteuid() != 0:
        return "the systemd host needs root (mount, unshare, pivot_root)"
    for tool in ("unshare", "nsenter", "systemctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/lib/systemd/systemd").exists():
        return "/lib/systemd/systemd is not installed"
    filesystems = Path("/proc/filesystems").read_text()
    if "\toverlay\n" not in filesystems:
        return "the kernel has no overlayfs"
    if not _cgroup2_root().is_dir():
        return "no cgroup2 hierarchy mounted"
    probe = subprocess.run(
        ["unshare", "--pid", "--mount", "--net", "--cgroup", "--fork", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"unshare of pid/mount/net/cgroup namespaces fails: {probe.stderr.strip()}"
    return None


def _cgroup2_root() -> Path:
    # Hybrid hosts mount cgroup2 at /sys/fs/cgroup/unified, pure cgroup2 hosts at /sys/fs/cgroup.
    if CGROUP2.is_dir():
        return CGROUP2
    return Path("/sys/fs/cgroup")


class SystemdHost:
    """One booted host; use `boot()` as a context manager."""

    def __init__(self, workdir: Path, lower: Path = Path("/"), binds: Sequence[Path] = ()) -> None:
        """`lower`: the overlay's lower layer (this machine's root, or a bare Debian tree made by
        debootstrap); `binds`: directories of this machine shown read-only at the same path
        inside (the checkout and its bundle, when the lower layer is not this machine's root)."""
        self.workdir = workdir
        self.lower = lower
        self.binds = tuple(binds)
        self.upper = workdir / "upper"
        self.root = workdir / "root"
        self.log_path = workdir / "systemd.log"
        self.cgroup = _cgroup2_root() / f"haolinju-systemd-host-{uuid.uuid4().hex[:12]}"
        self.canary = Path("/tmp") / f".haolinju-systemd-host-canary-{uuid.uuid4().hex}"
        self._unshare: subprocess.Popen[bytes] | None = None
        self.pid = 0

    # ---- lifecycle -------------------------------------------------------------------------

    @contextlib.contextmanager
    def boot(self, timeout: float = 60) -> Iterator[SystemdHost]:
        try:
            self._start()
            self.wait_booted(timeout)
            yield self
        finally:
            self.stop()

    def _start(self) -> None:
        for d in (self.upper, self.workdir / "work", self.root):
            d.mkdir(parents=True, exist_ok=True)
        self.canary.write_text("the systemd test host must never see this file\n")
        self.cgroup.mkdir()
        log_file = self.log_path.open("wb")
        # The shell moves itself into a cgroup of its own before unsharing the cgroup namespace,
        # so systemd manages that subtree and nothing else. --kill-child: if the unshare process
        # dies, the kernel SIGKILLs the namespace's PID 1 too.
        binds = ":".join(str(b) for b in self.binds)
        script = (
            f'echo $$ > "{self.cgroup}/cgroup.procs" && HOST_LOWER="{self.lower}" '
            f'HOST_BINDS="{binds}" exec unshare --pid --mount --net '
            f'--cgroup --fork --kill-child -- sh "{BOOT_SCRIPT}" "{self.root}" "{self.upper}" '
            f'"{self.workdir / "work"}" "{self.canary}" "{self.log_path}"'
        )
        self._unshare = subprocess.Popen(
            ["sh", "-c", script],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_file.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = _children(self._unshare.pid)
            if children:
                self.pid = children[0]
                return
            if self._unshare.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"systemd host did not start:\n{self.boot_log()}")

    def wait_booted(self, timeout: float) -> None:
        def booted() -> bool:
            if self._unshare is None or self._unshare.poll() is not None:
                raise RuntimeError(f"systemd host died while booting:\n{self.boot_log()}")
            state = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
            return state.stdout.strip() in ("running", "degraded")

        wait_for(booted, timeout, "systemd host to finish booting")
        failed = self.run(["systemctl", "--failed", "--plain", "--no-legend"], timeout=10).stdout
        if failed.strip():
            log.warning("units failed at boot of the systemd host:\n%s", failed)

    def stop(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self._unshare is not None:
            with contextlib.suppress(ProcessLookupError):
                self._unshare.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._unshare.wait(timeout=30)
        self.pid = 0
        # Remove the cgroup subtree bottom-up once its processes are gone.
        deadline = time.monotonic() + 10
        while self.cgroup.exists() and time.monotonic() < deadline:
            for d in sorted(self.cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if d.is_dir():
                    with contextlib.suppress(OSError):
                        d.rmdir()
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
            time.sleep(0.1)
        self.canary.unlink(missing_ok=True)

    def boot_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    # ---- driving it from outside -----------------------------------------------------------

    def nsenter(self, net: bool = True) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "-r", "-w", *(["-n"] if net else [])]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host (its root, PID and network namespaces) as root."""
        base_env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/root/.local/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "",
            "SYSTEMD_COLORS": "0",
        }
        result = subprocess.run(
            [
                *self.nsenter(),
                "env",
                "-i",
                *(f"{k}={v}" for k, v in {**base_env, **(env or {})}.items()),
                *argv,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
                f"\n--- stderr\n{result.stderr[-3000:]}"
            )
        return result

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def path(self, inside: str) -> Path:
        """A path inside the host, seen from outside (through the namespace's root)."""
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def journal(self, unit: str, *args: str) -> str:
        return self.run(["journalctl", "--no-pager", "-u", unit, *args]).stdout


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
