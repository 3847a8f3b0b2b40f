"""The reference county platform as a subprocess for `kiosk demo`, with the kiosk provisioned.

So the demo shows the whole path: tap -> record -> upload -> acknowledged by the platform.
Provisioning goes the county's way: the administrator (bootstrap token from a 0600 file)
registers the meal point and a township operator, the operator issues a one-time enrolment
code, and `provision` enrols the kiosk with it.
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
        token_file = self.workdir / "admin-token"
        token_file.unlink(missing_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.admin_token + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync.platform", "serve", "--db", db, "--port", str(self.port),
             "--key", str(self.workdir / "platform.key"), "--admin-token-file", str(token_file),
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

    def _admin_call(self, token: str, path: str, body: dict[str, object]) -> dict[str, object]:
        resp = httpx.post(
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=START_TIMEOUT_S,
        )
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"demo platform refused {path}: {resp.status_code} {resp.text}")
        answer: dict[str, object] = resp.json()
        return answer

    def enrolment_code(self, point_id: str, township: str = "演示镇") -> str:
        """Register the point and a township operator, and have the operator issue a code."""
        self._admin_call(
            self.admin_token, "/v1/admin/points", {"point_id": point_id, "township": township}
        )
        operator = self._admin_call(
            self.admin_token,
            "/v1/admin/operators",
            {"name": f"demo-{secrets.token_hex(4)}", "role": "operator", "township": township},
        )
        code = self._admin_call(
            str(operator["token"]), f"/v1/admin/points/{point_id}/enrolment-codes", {}
        )
        return str(code["code"])

    def provision_kiosk(self, device_id: str, point_id: str) -> Path:
        """Register the demo kiosk; point this process's secrets lookup at its credentials."""
        cred = self.workdir / "credentials"
        provision(self.url, device_id, point_id, self.enrolment_code(point_id), cred)
        os.environ["CREDENTIALS_DIRECTORY"] = str(cred)
        return cred

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
