"""Real processes over loopback: the reference platform under uvicorn (SQLite and PostgreSQL),
a kiosk store with a registered device key, and helpers to fill the outbox."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from models.db import Store
from models.records import append_record
from models.roster import apply_rows
from sync.client import PlatformClient
from sync.signing import DeviceKey, generate_device_key
from sync.uploader import Uploader
from tests.conftest import REPO, TZ, elder_row

ADMIN_TOKEN = "test-operator-token"
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin")
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, what: str, timeout: float = START_TIMEOUT_S) -> None:
    """Poll for a condition; a bound on waiting, never an assertion about speed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


# ----------------------------------------------------------------------------- PostgreSQL


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl and Path(initdb).resolve().name == "initdb"):
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
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

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync.platform", "--db", self.db_url, "--port", str(self.port),
             "--key", str(self.key_path), "--admin-token", ADMIN_TOKEN, "--log-level", "WARNING"],
            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"platform exited with {self.proc.returncode}")
            try:
                return httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, "the platform to start")

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
        return httpx.get(f"{self.url}/v1/health", timeout=5).json()["public_key"]

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def register(self, device_id: str, point_id: str, key: DeviceKey) -> str:
        r = self.admin(
            "POST", "/v1/devices",
            json={"device_id": device_id, "point_id": point_id, "public_key": key.public_key_b64},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def records(self, device_id: str) -> dict:
        r = self.admin("GET", f"/v1/admin/devices/{device_id}/records")
        assert r.status_code == 200, r.text
        return r.json()

    def alerts(self, device_id: str) -> list[dict]:
        return self.admin("GET", "/v1/admin/alerts", params={"device_id": device_id}).json()


def start_platform(db_url: str, workdir: Path) -> Platform:
    port = free_port()
    p = Platform(f"http://127.0.0.1:{port}", db_url, port, workdir / "platform.key")
    p.start()
    return p


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """One platform per backend for the session; tests isolate themselves by device id."""
    workdir = tmp_path_factory.mktemp(f"platform-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{workdir / 'platform.db'}"
    else:
        db_url = request.getfixturevalue("postgres").new_database()
    p = start_platform(db_url, workdir)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def sqlite_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A SQLite platform for the fault-injection tests (the backend is not what they test)."""
    workdir = tmp_path_factory.mktemp("platform-faults")
    p = start_platform(f"sqlite:///{workdir / 'platform.db'}", workdir)
    yield p
    p.stop()


# ----------------------------------------------------------------------------- the kiosk side


@dataclass
class Kiosk:
    store: Store
    key: DeviceKey
    key_path: Path
    device_id: str
    point_id: str
    token: str

    def client(self, url: str, **kwargs: object) -> PlatformClient:
        return PlatformClient(url, self.token, **kwargs)  # type: ignore[arg-type]

    def uploader(self, url: str, batch_size: int = 100, **kwargs: object) -> Uploader:
        return Uploader(
            self.store, self.client(url, **kwargs), self.key, self.device_id, batch_size=batch_size
        )


ELDERS = 50


def seed_elders(store: Store, n: int = ELDERS) -> None:
    apply_rows(
        store, [elder_row(i) for i in range(1, n + 1)], dt.datetime(2026, 12, 1, tzinfo=TZ), "test"
    )


def add_records(store: Store, device_id: str, n: int, start_day: int = 0) -> list[str]:
    """n records in one transaction: elder i, one lunch per day, days from 2026-01-01."""
    ids = []
    with store.write() as session:
        from sqlalchemy import func, select

        from models.tables import MealRecord

        base = session.scalar(select(func.count()).select_from(MealRecord)) or 0
        for k in range(base, base + n):
            day = dt.date(2026, 1, 1) + dt.timedelta(days=start_day + k // ELDERS)
            rec = append_record(
                session,
                device_id=device_id,
                elder_id=f"E{k % ELDERS + 1:04d}",
                service="meal",
                slot="lunch",
                service_date=day,
                checked_in_at=dt.datetime.combine(day, dt.time(11, 30), tzinfo=TZ),
                method="card",
                card_uid=f"{0xA0000000 + k % ELDERS + 1:08X}",
                reader="desk",
                flags="",
            )
            ids.append(rec.record_id)
    return ids


@pytest.fixture
def kiosk(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> Kiosk:
    """A kiosk store with elders, a device key, and its device registered on `platform`."""
    platform: Platform = (
        request.getfixturevalue("platform")
        if "platform" in request.fixturenames
        else request.getfixturevalue("sqlite_platform")
    )
    seed_elders(store)
    key_path = tmp_path / "data" / "keys" / "device.key"
    key = generate_device_key(key_path)
    device_id = "dev-" + uuid.uuid4().hex[:10]
    point_id = "pt-" + uuid.uuid4().hex[:8]
    token = platform.register(device_id, point_id, key)
    return Kiosk(store, key, key_path, device_id, point_id, token)
