"""The reference county platform (`python -m sync.platform`) under uvicorn, on SQLite or on a
PostgreSQL server the tests start themselves."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.platform.admin_client import AdminClient, enrol_device
from sync.signing import DeviceKey
from tests.support.net import free_port
from tests.support.paths import REPO
from tests.support.wait import wait_until

ADMIN_TOKEN = "test-operator-token"
TOWNSHIP = "test-township"
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin")
START_TIMEOUT_S = 60.0


# ----------------------------------------------------------------------------- PostgreSQL


class PostgresMissingError(Exception):
    """The PostgreSQL binaries are not installed (a reason to skip, not a failure)."""


def _pg_bin(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        if Path(d, name).is_file():
            return str(Path(d, name))
    return shutil.which(name)


@dataclass
class Postgres:
    host: str
    port: int

    def new_database(self) -> str:
        import psycopg

        name = "p_" + uuid.uuid4().hex[:12]
        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL server on a free port (fsync off), removed on exit."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl and Path(initdb).resolve().name == "initdb"):
        raise PostgresMissingError("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    # /usr/local/bin/initdb may be a wrapper; prefer the real one next to postgres.
    real = Path("/usr/lib/postgresql/15/bin")
    if (real / "initdb").is_file():
        initdb, pg_ctl = str(real / "initdb"), str(real / "pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # postgres refuses to run as root.
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
    )
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield Postgres("127.0.0.1", port)
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- the platform


@dataclass
class Platform:
    url: str
    db_url: str
    port: int
    key_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # more `serve` options, e.g. ("--signatures", "deferred")

    operator_token: str | None = None  # a township operator of TOWNSHIP, made on first use

    def start(self) -> None:
        # The administrator's bootstrap token comes from a 0600 file, never from argv.
        token_file = self.key_path.parent / "admin-token"
        if not token_file.exists():
            token_file.touch(mode=0o600)
            token_file.write_text(ADMIN_TOKEN + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync.platform", "serve", "--db", self.db_url,
             "--port", str(self.port), "--key", str(self.key_path),
             "--admin-token-file", str(token_file), "--log-level", "WARNING", *self.extra_args],
            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"platform exited with {self.proc.returncode}")
            try:
                return httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, "the platform to start", timeout=START_TIMEOUT_S, step=0.05)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def public_key(self) -> str:
        key: str = httpx.get(f"{self.url}/v1/health", timeout=5).json()["public_key"]
        return key

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def operator(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request as the township operator of TOWNSHIP (roster publishing, codes...)."""
        if self.operator_token is None:
            with httpx.Client(base_url=self.url, timeout=30) as http:
                self.operator_token = AdminClient(http, ADMIN_TOKEN).create_operator(
                    "op-" + uuid.uuid4().hex[:8], TOWNSHIP
                )
        headers = {"Authorization": f"Bearer {self.operator_token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def enrolment_code(self, point_id: str, timezone: str = "Asia/Shanghai") -> str:
        """Register the meal point (administrator) and issue a one-time code (operator).

        `timezone` is the point's zone: the platform rejects records whose service_date is not
        the check-in's day there, so it must match the kiosk's site.timezone."""
        with httpx.Client(base_url=self.url, timeout=30) as http:
            AdminClient(http, ADMIN_TOKEN).create_point(point_id, TOWNSHIP, timezone=timezone)
        r = self.operator("POST", f"/v1/admin/points/{point_id}/enrolment-codes", json={})
        assert r.status_code == 201, r.text
        code: str = r.json()["code"]
        return code

    def register(
        self, device_id: str, point_id: str, key: DeviceKey, timezone: str = "Asia/Shanghai"
    ) -> str:
        code = self.enrolment_code(point_id, timezone)
        with httpx.Client(base_url=self.url, timeout=30) as http:
            return enrol_device(http, code, device_id, point_id, key.public_key_b64)

    def records(self, device_id: str) -> dict[str, Any]:
        r = self.admin("GET", f"/v1/admin/devices/{device_id}/records")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def alerts(self, device_id: str) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.admin(
            "GET", "/v1/admin/alerts", params={"device_id": device_id}
        ).json()
        return body


def start_platform(db_url: str, workdir: Path, *extra_args: str) -> Platform:
    """A platform on a free port with its signing key in `workdir`, answering /v1/health."""
    port = free_port()
    p = Platform(f"http://127.0.0.1:{port}", db_url, port, workdir / "platform.key",
                 extra_args=extra_args)  # fmt: skip
    p.start()
    return p


def backend_db_url(request: pytest.FixtureRequest, backend: str, workdir: Path) -> str:
    """A fresh database for a backend-parametrised fixture: a SQLite file in `workdir`, or a
    new database on the session's PostgreSQL (the `postgres` fixture, which skips where the
    server binaries are missing)."""
    if backend == "sqlite":
        return sqlite_url(workdir)
    postgres: Postgres = request.getfixturevalue("postgres")
    return postgres.new_database()


def sqlite_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'platform.db'}"
