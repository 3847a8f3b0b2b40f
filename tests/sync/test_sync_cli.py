"""`kiosk sync` and `kiosk sync --status` against the platform process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiosk.cli.main import app
from tests.support.config import write_config
from tests.support.outbox import Kiosk, add_records
from tests.support.platform import Platform

pytestmark = pytest.mark.slow


def test_sync_command_uploads_and_reports(
    sqlite_platform: Platform, kiosk: Kiosk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_records(kiosk.store, kiosk.device_id, 100)
    config = write_config(
        tmp_path,
        device_id=kiosk.device_id,
        extra=f'platform: {{url: "{sqlite_platform.url}", batch_size: 40}}\n',
    )
    monkeypatch.setenv("KIOSK_DEVICE_TOKEN", kiosk.token)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    runner = CliRunner()
    args = ["--config", str(config), "--data-dir", str(kiosk.store.db_path.parent)]

    before = runner.invoke(app, [*args, "sync", "--status"])
    assert before.exit_code == 0, before.output
    assert "pending:   100" in before.output and "last success: never" in before.output

    result = runner.invoke(app, [*args, "sync"])
    assert result.exit_code == 0, result.output
    assert "accepted 100, duplicate 0, rejected 0, 0 still pending" in result.output
    assert sqlite_platform.records(kiosk.device_id)["count"] == 100

    after = runner.invoke(app, [*args, "sync", "--status"])
    assert "pending:   0" in after.output and "uploaded:  100" in after.output


def test_sync_without_token_says_so(
    kiosk: Kiosk, sqlite_platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path,
        device_id=kiosk.device_id,
        extra=f'platform: {{url: "{sqlite_platform.url}", batch_size: 40}}\n',
    )
    monkeypatch.delenv("KIOSK_DEVICE_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    result = CliRunner().invoke(
        app, ["--config", str(config), "--data-dir", str(kiosk.store.db_path.parent), "sync"]
    )
    assert result.exit_code == 2
    assert "no device token" in result.output
