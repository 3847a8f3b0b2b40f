"""Issue 12.8: deleting the newest records after the platform acknowledged them (the sqlite3
shell, or an old backup put back) leaves a chain that is internally perfect. Before, the
terminal then served the same elder again in that slot and the platform rejected the next real
meals as a fork. Now the terminal compares its chain with the platform's signed checkpoint
acks (kept locally, and fetched again at every checkpoint push), refuses to record with a clear
status (screen/health, doctor), and `kiosk recover --from-platform` puts the records back."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.checkin.rules import Refusal
from kiosk.ops.doctor import Level, check_evidence
from kiosk.ops.storage import open_store
from kiosk.runtime.daemon import build_services
from sync.checkpoint import push_checkpoint
from sync.client import PlatformClient
from tests.security.local_evidence import Terminal, make_terminal, sqlite3_shell
from tests.support.config import BASE_CONFIG
from tests.support.paths import REPO
from tests.support.platform import Platform, sqlite_url, start_platform

NOW = dt.datetime(2026, 12, 2, 4, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("platform-rollback")
    p = start_platform(sqlite_url(workdir), workdir)
    yield p
    p.stop()


def _served_and_acknowledged(tmp_path: Path, platform: Platform) -> Terminal:
    term = make_terminal(tmp_path, platform, platform_key=platform.public_key)
    for n in (1, 2, 3):
        assert term.tap(n).accepted
    client = PlatformClient(platform.url, term.token or "")
    assert push_checkpoint(term.services.store, client, term.key, term.device_id, NOW).ack
    assert term.uploader(platform).run_round().accepted == 3
    assert push_checkpoint(term.services.store, client, term.key, term.device_id, NOW).ack
    client.close()
    return term


def _restart(term: Terminal, tmp_path: Path) -> Terminal:
    """A new daemon on the same data directory (store, services, check-in rules afresh)."""
    term.services.store.close()
    store = open_store(tmp_path / "data")
    services = build_services(
        term.services.config, tmp_path / "data", readers=[], store=store, clock=term.clock
    )
    return Terminal(services, term.clock, term.key, term.device_id, term.token, store.db_path)


DELETE_HEAD = """
    DELETE FROM meal_record WHERE seq = 3;
    DELETE FROM outbox WHERE record_id NOT IN (SELECT record_id FROM meal_record);
"""


def test_deleting_the_last_acknowledged_record_stops_check_in_until_recovered(
    tmp_path: Path, platform: Platform
) -> None:
    term = _served_and_acknowledged(tmp_path, platform)
    term.services.store.close()
    out = sqlite3_shell(term.db_path, DELETE_HEAD)
    assert out.returncode == 0, out.stderr  # acknowledged rows may go: the platform holds them
    term = _restart(term, tmp_path)

    again = term.tap(3)  # the same elder, same slot: would be a second meal
    assert again.refusal is Refusal.CHAIN_ROLLED_BACK
    assert again.message == "本机记录被删改，暂停签到，请联系技术员"
    assert term.tap(4).refusal is Refusal.CHAIN_ROLLED_BACK  # nobody is recorded meanwhile
    health = term.services.health()
    assert health.status == "error"
    assert any("已暂停签到" in p for p in health.problems), health.problems
    doctor = check_evidence(
        term.services.store, term.key.record_ok, "", term.services.checkin.evidence.platform
    )
    assert doctor.level is Level.FAIL and doctor.blocking
    assert "acknowledged the chain up to seq 3" in doctor.detail

    # The technician restores the platform's copy.
    config = tmp_path / "config.yaml"
    config.write_text(
        BASE_CONFIG.replace("test-terminal", term.device_id)
        + f"platform: {{url: {platform.url}, public_key: {platform.public_key}}}\n",
        encoding="utf-8",
    )
    term.services.store.close()
    proc = subprocess.run(
        [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir",
         str(tmp_path / "data"), "recover", "--from-platform"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "KIOSK_DEVICE_TOKEN": term.token or "", "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "restored 1 records; chain head now seq 3" in proc.stdout

    term = _restart(term, tmp_path)
    assert term.tap(3).outcome == "duplicate"  # served once, as the evidence says
    fourth = term.tap(4)
    assert fourth.accepted and fourth.seq == 4
    result = term.uploader(platform).run_round()
    assert (result.accepted, result.rejected) == (1, 0), result  # no fork
    assert term.services.checkin.check_evidence().ok


def test_erasing_the_local_acks_too_is_caught_by_the_platforms_copy(
    tmp_path: Path, platform: Platform
) -> None:
    term = _served_and_acknowledged(tmp_path, platform)
    term.services.store.close()
    out = sqlite3_shell(
        term.db_path,
        DELETE_HEAD
        + """
        DROP TRIGGER platform_receipt_kept;
        UPDATE outbox SET uploaded_at = NULL, receipt_id = NULL;
        DELETE FROM platform_receipt;
        """,
    )
    assert out.returncode == 0, out.stderr
    term = _restart(term, tmp_path)
    # Nothing local is left to compare with: the evidence check at start finds no rollback...
    assert term.services.checkin.check_evidence().rolled_back is None
    # ... but the daemon's checkpoint push (right at start, then every minute) fetches the
    # platform's newest ack first, and the check before the next tap sees it: recording stops.
    client = PlatformClient(platform.url, term.token or "")
    push_checkpoint(term.services.store, client, term.key, term.device_id, NOW)
    client.close()
    refused = term.tap(3)
    assert refused.refusal is Refusal.CHAIN_ROLLED_BACK
    assert "up to seq 3" in (term.services.checkin.rolled_back or "")
