"""The reference county platform as a subprocess for `kiosk demo`, with the kiosk provisioned.

So the demo shows the whole path: tap -> record -> upload -> acknowledged by the platform.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kiosk.ops.provision import provision

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoPlatform:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start it and wait until it answers; returns its roster-signing public key."""
        db = f"sqlite:///{self.workdir / 'platform.db'}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync.platform", "--db", db, "--port", str(self.port),
             "--key", str(self.workdir / "platform.key"), "--admin-token", self.admin_token,
             "--log-level", "WARNING"],
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"reference platform exited with {self.proc.returncode}")
            try:
                return str(httpx.get(f"{self.url}/v1/health", timeout=1).json()["public_key"])
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("reference platform did not start")

    def provision_kiosk(self, device_id: str, point_id: str) -> Path:
        """Register the demo kiosk; point this process's secrets lookup at its credentials."""
        cred = self.workdir / "credentials"
        provision(self.url, device_id, point_id, self.admin_token, cred)
        os.environ["CREDENTIALS_DIRECTORY"] = str(cred)
        return cred

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
