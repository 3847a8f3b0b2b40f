"""The fault harness: `kiosk run` as a restartable subprocess, an SSE witness of what reached
the screen, and the invariants the county's subsidy depends on, checked on the database file.

Sizes come from the environment: CI runs small, `make soak` sets KIOSK_SOAK=1 for the long run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from kiosk.ops.storage import open_store
from models.chain import verify_chain
from models.db import Store
from models.roster import RosterRow, apply_rows
from models.tables import MealRecord, Outbox, row_to_dict
from tests.support.config import write_config
from tests.support.daemon import kiosk_command
from tests.support.net import free_port
from tests.support.paths import REPO
from tests.support.wait import wait_until

SOAK = os.environ.get("KIOSK_SOAK", "") not in ("", "0")
START_TIMEOUT_S = 60.0
_MIGRATE_LOCK = threading.Lock()


def size(ci: int, soak: int) -> int:
    """A figure for this run: small inside `make test`, big behind `make soak`."""
    return soak if SOAK else ci


@dataclass
class KioskProc:
    """One terminal's data directory and config; started, killed and restarted at will."""

    root: Path
    readers: str = "readers: [{kind: simulated, name: desk}]\n"
    extra_config: str = ""
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    data_dir: Path | None = None
    _probe: httpx.Client | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = write_config(self.root, self.port, self.extra_config, self.readers)
        self.data_dir = self.data_dir or self.root / "data"
        self.log_path = self.root / "kiosk.log"
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "kiosk.db"

    def seed(self, roster: list[RosterRow]) -> None:
        import datetime as dt

        with _MIGRATE_LOCK:  # Alembic's context is process-global: one migration at a time
            store = open_store(self.data_dir)
        apply_rows(store, roster, dt.datetime.now(dt.UTC), source="test")
        store.close()

    def spawn(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            kiosk_command(self.config, self.data_dir, "run"),
            cwd=REPO,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        log.close()
        return self.proc

    def up(self) -> bool:
        assert self.proc is not None
        if self._probe is None:
            self._probe = httpx.Client(timeout=1)
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return self._probe.get(f"{self.base}/api/health").status_code in (200, 503)
        except httpx.TransportError:
            return False

    def start(self) -> None:
        self.spawn()
        wait_until(self.up, f"the daemon to answer on {self.base}", START_TIMEOUT_S)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def tap(self, client: httpx.Client, uid: str, reader: str | None = None) -> None:
        body: dict[str, str] = {"uid": uid}
        if reader:
            body["reader"] = reader
        client.post(f"{self.base}/api/simulate/tap", json=body, timeout=5)


class Witness:
    """What reached the screen: an /api/events subscriber collecting every check-in event."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.events: list[dict[str, Any]] = []
        self.received_at: list[float] = []
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            with httpx.stream("GET", f"{self.base}/api/events", timeout=None) as resp:
                for line in resp.iter_lines():
                    self.ready.set()
                    if line.startswith("data: "):
                        data = json.loads(line[6:])
                        if "outcome" in data:
                            with self._lock:
                                self.events.append(data)
                                self.received_at.append(time.monotonic())
        except (httpx.HTTPError, OSError):
            pass  # the daemon was killed: the stream ends, what we saw stays seen
        finally:
            self.ready.set()

    def wait_ready(self) -> None:
        assert self.ready.wait(10), "no SSE stream from /api/events"

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)


@dataclass
class StoreFacts:
    records: list[dict[str, Any]]
    outbox: dict[str, dict[str, Any]]

    @property
    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["record_id"]: r for r in self.records}


def integrity(db_path: Path) -> str:
    with sqlite3.connect(db_path, timeout=10) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def check_store(db_path: Path, *, all_unsent: bool = True) -> StoreFacts:
    """The invariants that hold whatever happened: raises AssertionError with what broke."""
    verdict = integrity(db_path)
    assert verdict == "ok", f"PRAGMA integrity_check: {verdict}"
    store = Store(db_path)
    try:
        with store.read() as s:
            records = [
                row_to_dict(r) for r in s.scalars(select(MealRecord).order_by(MealRecord.seq))
            ]
            outbox = {o.record_id: row_to_dict(o) for o in s.scalars(select(Outbox))}
    finally:
        store.close()
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(records) + 1)), f"seq not gapless: {seqs[:5]}...{seqs[-5:]}"
    faults = verify_chain(records)
    assert faults == [], f"hash chain: {faults[:5]}"
    ids = {r["record_id"] for r in records}
    assert len(ids) == len(records)
    assert set(outbox) == ids, (
        f"outbox and records differ: {len(set(outbox) - ids)} orphan rows, "
        f"{len(ids - set(outbox))} records without an outbox row"
    )
    if all_unsent:
        sent = [k for k, o in outbox.items() if o["uploaded_at"] is not None]
        assert not sent, f"{len(sent)} records marked uploaded but nothing was uploaded"
    keys = [(r["elder_id"], r["service"], r["service_date"], r["slot"]) for r in records]
    assert len(set(keys)) == len(keys), "an elder served twice in one slot"
    return StoreFacts(records, outbox)


def check_screen_against_store(events: list[dict[str, Any]], facts: StoreFacts) -> None:
    """Every success on the screen exists exactly once; nothing refused exists."""
    by_id = facts.by_id
    for e in events:
        if e["outcome"] == "accepted":
            rec = by_id.get(e["record_id"])
            assert rec is not None, f"LOST: accepted on screen, not stored: {e}"
            assert rec["seq"] == e["seq"] and rec["elder_id"] == e["elder_id"], (rec, e)
    accepted = [e["record_id"] for e in events if e["outcome"] == "accepted"]
    assert len(accepted) == len(set(accepted)), "one record shown as accepted twice"
    refused_cards = {e["card_uid"] for e in events if e["outcome"] == "refused" and e["card_uid"]}
    stored_cards = {r["card_uid"] for r in facts.records}
    assert not refused_cards & stored_cards, (
        f"refused cards have records: {sorted(refused_cards & stored_cards)[:5]}"
    )


def rss_and_fds(pid: int) -> tuple[int, int]:
    """Resident set size (bytes) and open file descriptors of a process (Linux /proc)."""
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return rss_pages * os.sysconf("SC_PAGE_SIZE"), fds


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
