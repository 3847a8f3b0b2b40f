"""`kiosk run` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from kiosk.ops.storage import open_store
from models.db import Store
from models.roster import RosterRow, apply_rows
from tests.support.config import SIMULATED_READER, write_config
from tests.support.net import free_port
from tests.support.paths import REPO
from tests.support.wait import wait_until

START_TIMEOUT_S = 60.0  # a bound on a loaded 2-core machine, not a speed figure


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


def spawn_daemon(
    config: Path, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `kiosk run` (stderr piped, for the failure message of `wait_healthy`)."""
    return subprocess.Popen(
        kiosk_command(config, data_dir, "run"),
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def wait_healthy(proc: subprocess.Popen[str], base: str) -> None:
    """Wait until /api/health answers (200 or 503); fail with the daemon's stderr if it died."""

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode}: {proc.communicate()[1]}")
        try:
            return httpx.get(f"{base}/api/health", timeout=1).status_code in (200, 503)
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, "the daemon's /api/health", timeout=START_TIMEOUT_S, step=0.05)
    except AssertionError:
        stop_daemon(proc)
        raise


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
    proc = spawn_daemon(config, tmp_path / "data", env)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(proc, base)
    return proc, base


def stop_daemon(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
