"""Shared set-up for the benchmarks: a kiosk config and roster, a settable clock, the naive
store (a fresh SQLite connection per transaction), the reference platform, and processes."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from bench.harness import REPO
from models.db import Store, make_engine
from models.roster import RosterRow, apply_rows

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")

KIOSK_CONFIG = """\
site:
  point_id: ZY-BENCH-001
  name: 基准测试小院
device:
  device_id: bench-terminal
meal:
  slots:
    - {name: breakfast, start: "07:00", end: "08:30"}
    - {name: lunch, start: "11:00", end: "13:30"}
readers:
  - {kind: simulated, name: desk}
"""


def kiosk_config() -> Any:
    from kiosk.config import parse_config

    return parse_config(KIOSK_CONFIG)


class Clock:
    """Lunch time on a settable day: each day every elder may eat once more."""

    def __init__(self) -> None:
        self.day = 0

    def __call__(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, 11, 30, tzinfo=TZ) + dt.timedelta(days=self.day)


def card_uid(n: int) -> str:
    return f"{0xA0000000 + n:08X}"


def elder_rows(n: int) -> list[RosterRow]:
    return [
        RosterRow(
            elder_id=f"E{i:05d}",
            name=f"老人{i}",
            id_number_masked="141129********0000",
            card_uid=card_uid(i),
            group="一组",
            contact_phone="13800000000",
            status="active",
            agreement_signed=True,
        )
        for i in range(1, n + 1)
    ]


def seed(store: Store, n: int) -> None:
    apply_rows(store, elder_rows(n), dt.datetime(2025, 12, 1, tzinfo=TZ), source="bench")


# ----------------------------------------------------------------------------- naive store


def _naive_engine(db_path: Path) -> Engine:
    """What a first version would do: no pool (a new connection, schema read, pragmas for
    every transaction), the default rollback journal, synchronous=FULL."""
    return make_engine(db_path, immediate=True, pooled=False, journal_mode="DELETE")


class NaiveStore(Store):
    """The same Store interface (so the same CheckinService rules run on it), but a fresh
    SQLite connection per transaction, rollback journal, synchronous=FULL."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path)  # engines connect lazily: nothing opened yet
        self._writer.dispose()
        self._reader.dispose()
        self._writer = _naive_engine(db_path)
        self._reader = _naive_engine(db_path)
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._reader, expire_on_commit=False)


def open_naive_store(db_path: Path) -> NaiveStore:
    store = NaiveStore(db_path)
    store.upgrade_schema(None)
    return store


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


ADMIN_TOKEN = "bench-operator-token"


@dataclass
class Platform:
    """The reference county platform (`python -m sync.platform`) on loopback, SQLite backend."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def register(self, device_id: str, point_id: str, public_key_b64: str) -> str:
        """Enrol the county's way: point and operator by the administrator, a one-time code."""
        import httpx

        from sync.platform.admin_client import AdminError, enrol_with_admin

        with httpx.Client(base_url=self.url, timeout=60) as http:
            try:
                return enrol_with_admin(http, ADMIN_TOKEN, device_id, point_id, public_key_b64)
            except AdminError as exc:
                raise RuntimeError(f"device registration failed: {exc}") from None

    def record_count(self, device_id: str) -> int:
        r = self.admin("GET", f"/v1/admin/devices/{device_id}/records")
        data = r.json()
        for key in ("count", "total", "records"):
            if key in data:
                value = data[key]
                return len(value) if isinstance(value, list) else int(value)
        return -1

    def stop(self) -> None:
        stop_process(self.proc)


@contextlib.contextmanager
def platform(
    workdir: Path, name: str = "platform", db_url: str | None = None, extra: tuple[str, ...] = ()
) -> Any:
    """The platform on SQLite in `workdir`, or on `db_url` (PostgreSQL); `extra` serve flags."""
    import httpx

    port = free_port()
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "platform.log"
    log_file = log_path.open("ab")
    token_file = folder / "admin-token"  # secrets from a 0600 file, never argv
    token_file.unlink(missing_ok=True)
    token_file.touch(mode=0o600)
    token_file.write_text(ADMIN_TOKEN + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync.platform", "serve",
         "--db", db_url or f"sqlite:///{folder / 'platform.db'}",
         "--port", str(port), "--key", str(folder / "platform.key"),
         "--admin-token-file", str(token_file), "--log-level", "WARNING", *extra],
        cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=log_file,
    )  # fmt: skip
    log_file.close()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"platform exited: {log_path.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    p = Platform(url, proc, log_path)
    try:
        wait_until(up, "the reference platform to start")
        yield p
    finally:
        p.stop()


@dataclass
class KioskSide:
    """A kiosk database with a registered device key, for the upload benchmarks."""

    store: Store
    key: Any
    device_id: str
    token: str

    def uploader(self, url: str, batch_size: int) -> Any:
        from sync.client import PlatformClient
        from sync.uploader import Uploader

        return Uploader(
            self.store, PlatformClient(url, self.token), self.key, self.device_id,
            batch_size=batch_size,
        )  # fmt: skip


def template_store(workdir: Path, elders: int) -> Path:
    """A migrated kiosk database with `elders` elders, to copy for each simulated kiosk."""
    from kiosk.ops.storage import open_store

    folder = workdir / "template"
    store = open_store(folder)
    seed(store, elders)
    store.checkpoint()
    store.close()
    return folder / "kiosk.db"


def kiosk_side(template: Path, folder: Path, plat: Platform) -> KioskSide:
    from sync.signing import generate_device_key

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, folder / "kiosk.db")
    store = Store(folder / "kiosk.db")
    key = generate_device_key(folder / "device.key")
    device_id = "bench-" + uuid.uuid4().hex[:10]
    token = plat.register(device_id, "pt-" + uuid.uuid4().hex[:8], key.public_key_b64)
    return KioskSide(store, key, device_id, token)


def add_records(store: Store, device_id: str, n: int, elders: int, start: int = 0) -> None:
    """n accepted lunch records in one transaction: elder k % elders, a new day per round;
    signed at insert with the key `kiosk_side` put beside the database (as the daemon does)."""
    from models.records import append_record
    from sync.signing import load_device_key

    signer = load_device_key(store.db_path.parent / "device.key").sign_record
    with store.write() as session:
        for k in range(start, start + n):
            day = dt.date(2025, 1, 1) + dt.timedelta(days=k // elders)
            append_record(
                session,
                signer=signer,
                device_id=device_id,
                elder_id=f"E{k % elders + 1:05d}",
                service="meal",
                slot="lunch",
                service_date=day,
                checked_in_at=dt.datetime.combine(day, dt.time(11, 30), tzinfo=TZ),
                method="card",
                card_uid=card_uid(k % elders + 1),
                reader="desk",
                flags="",
            )
