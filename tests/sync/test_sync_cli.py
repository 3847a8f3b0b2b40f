"""`kiosk sync` and `kiosk sync --status` against the platform process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiosk.cli.main import app
from tests.sync.conftest import Kiosk, Platform, add_records

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, device_id: str, url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
site: {{point_id: ZY-T, name: 同步测试小院}}
device: {{device_id: {device_id}}}
meal:
  slots: [{{name: lunch, start: "10:00", end: "14:00"}}]
platform: {{url: "{url}", batch_size: 40}}
""",
        encoding="utf-8",
    )
    return path


def test_sync_command_uploads_and_reports(
    sqlite_platform: Platform, kiosk: Kiosk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_records(kiosk.store, kiosk.device_id, 100)
    config = write_config(tmp_path, kiosk.device_id, sqlite_platform.url)
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
    config = write_config(tmp_path, kiosk.device_id, sqlite_platform.url)
    monkeypatch.delenv("KIOSK_DEVICE_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    result = CliRunner().invoke(
        app, ["--config", str(config), "--data-dir", str(kiosk.store.db_path.parent), "sync"]
    )
    assert result.exit_code == 2
    assert "no device token" in result.output
