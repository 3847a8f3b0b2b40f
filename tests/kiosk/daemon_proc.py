"""Running `kiosk run` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kiosk.runtime.daemon import open_store
from models.db import Store
from models.roster import RosterRow, apply_rows
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def noon_zone() -> str:
    """A fixed-offset zone in which it is about noon now, so a lunch slot is always open."""
    offset = 12 - dt.datetime.now(dt.UTC).hour
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}")


SIMULATED_READER = "readers: [{kind: simulated, name: desk}]\n"


def write_config(
    tmp_path: Path, port: int, extra: str = "", readers: str = SIMULATED_READER
) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
site: {{point_id: ZY-T, name: 进程测试小院, timezone: {noon_zone()}}}
device: {{device_id: proc-test}}
meal:
  slots: [{{name: lunch, start: "10:00", end: "14:00"}}]
web: {{port: {port}}}
{readers}{extra}""",
        encoding="utf-8",
    )
    return path


def kiosk_command(config: Path, data_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kiosk",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        *args,
    ]


def start_daemon(
    tmp_path: Path,
    roster: list[RosterRow],
    env: dict[str, str] | None = None,
    extra_config: str = "",
    readers: str = SIMULATED_READER,
    prepare: Callable[[Store, Path], None] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Seed the roster, start `kiosk run`, wait until /api/health answers; (process, base URL).

    `prepare(store, data_dir)` runs before the daemon starts (e.g. to enrol faces).
    """
    port = free_port()
    config = write_config(tmp_path, port, extra_config, readers)
    store = open_store(tmp_path / "data")
    apply_rows(store, roster, dt.datetime.now(dt.UTC), source="test")
    if prepare is not None:
        prepare(store, tmp_path / "data")
    store.close()
    proc = subprocess.Popen(
        kiosk_command(config, tmp_path / "data", "run"),
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code in (200, 503):
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"daemon did not come up: {proc.communicate()[1]}")
        time.sleep(0.1)


def stop_daemon(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
