"""Sync after an outage (issue 12 points 18-20): reconciliation owed during backoff runs as
soon as the link is back, instants are compared as instants (UTC) whatever zone stamped them,
and the screen stops saying 平台连不上 once the platform answers again."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.statusbar import status_bar
from models.db import Store
from models.tables import Outbox
from sync.status import sync_status
from tests.support.outbox import add_records, seed_elders
from tests.support.security import Linked


def _cut(linked: Linked) -> None:
    linked.link.down = True


def _restore(linked: Linked) -> None:
    linked.link.down = False
    linked.time.t += 3600  # well past any backoff delay


def test_reconciliation_skipped_during_backoff_runs_when_the_link_is_back(
    linked: Linked, store: Store
) -> None:
    seed_elders(store)
    add_records(store, linked.device_id, 5)
    runner = linked.runner
    _cut(linked)
    assert runner.upload_job() is False  # the link is down: backoff starts
    assert runner.reconcile_job() is False  # skipped by the backoff gate
    assert linked.reconcile_calls == []
    _restore(linked)
    # The next job to reach the platform is an upload, not the reconciliation (6 h away).
    assert runner.upload_job() is True
    assert len(linked.reconcile_calls) == 1, "the skipped reconciliation did not run"
    assert runner.reconcile_owed is False
    # Paid once: further uploads do not reconcile again.
    assert runner.upload_job() is True
    assert len(linked.reconcile_calls) == 1


def test_failed_reconciliation_is_owed_too(linked: Linked, store: Store) -> None:
    runner = linked.runner
    _cut(linked)
    assert runner.reconcile_job() is False  # fails on the link, not skipped
    _restore(linked)
    assert runner.heartbeat_job() is True
    assert len(linked.reconcile_calls) == 1


def test_screen_stops_saying_platform_unreachable_once_uploads_succeed(
    linked: Linked, store: Store, services: KioskServices
) -> None:
    seed_elders(store)
    add_records(store, linked.device_id, 3)
    services.sync_state = linked.runner.state
    _cut(linked)
    assert linked.runner.upload_job() is False
    bar = status_bar(services.health(), services.now())
    texts = [i["text"] for i in bar["items"]]
    assert "平台连不上" in texts
    _restore(linked)
    assert linked.runner.upload_job() is True
    health = services.health()
    assert health.sync.state == "ok", health.sync
    assert "数据上传失败，记录已保存在本机" not in health.problems
    bar = status_bar(health, services.now())
    texts = [i["text"] for i in bar["items"]]
    assert "平台连不上" not in texts, texts


def test_last_success_is_stamped_in_utc(linked: Linked, store: Store) -> None:
    seed_elders(store)
    add_records(store, linked.device_id, 2)
    assert linked.runner.upload_job() is True
    last = linked.runner.state.last_success_at
    assert last is not None and last.utcoffset() == dt.timedelta(0)


def test_status_compares_instants_not_zone_texts(linked: Linked, store: Store) -> None:
    """`kiosk sync` used to stamp in the site zone (+08:00), the daemon in the system zone.
    The later upload (by the daemon, in UTC) must win although its text sorts lower."""
    seed_elders(store)
    ids = add_records(store, linked.device_id, 2)
    assert linked.runner.upload_job() is True  # real receipts: the outbox guard allows restamps
    by_cli = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # 02:00Z
    by_daemon = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)  # an hour later
    with store.write() as s:
        s.execute(update(Outbox).where(Outbox.record_id == ids[0]).values(uploaded_at=by_cli))
        s.execute(update(Outbox).where(Outbox.record_id == ids[1]).values(uploaded_at=by_daemon))
    status = sync_status(store)
    assert status.last_success_at == by_daemon


def _config(tmp_path: Path, device_id: str, platform: bool = False) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "site: {point_id: ZY-TEST-001, name: 测试, timezone: Asia/Shanghai}\n"
        f"device: {{device_id: {device_id}}}\n"
        'meal: {slots: [{name: lunch, start: "10:00", end: "14:00"}]}\n'
        # The test records are from January: look back far enough to see them.
        + ("platform: {url: 'http://platform.test', reconcile_days: 366}\n" if platform else ""),
        encoding="utf-8",
    )
    return config


def test_kiosk_sync_reconciles_too(
    linked: Linked, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kiosk sync` by hand reconciles after uploading, and re-sends what the platform lacks."""
    import sync.client
    from kiosk.cli.main import app as cli

    seed_elders(store)
    add_records(store, linked.device_id, 3)
    assert linked.runner.upload_job() is True
    # Rows lost on the platform's side after it acknowledged them.
    with sqlite3.connect(tmp_path / "platform.db") as db:
        db.execute("DELETE FROM record WHERE device_id = ?", (linked.device_id,))
    assert sync_status(store).pending == 0
    linked.reconcile_calls.clear()
    monkeypatch.setattr(sync.client, "PlatformClient", lambda *_a, **_k: linked.client)
    monkeypatch.setenv("KIOSK_DEVICE_TOKEN", "unused: the link carries the token")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = _config(tmp_path, linked.device_id, platform=True)
    result = CliRunner().invoke(
        cli, ["--config", str(config), "--data-dir", str(store.db_path.parent), "sync"]
    )
    assert linked.reconcile_calls, "kiosk sync did not reconcile"
    assert "3 records re-queued" in result.output, result.output
    assert "re-sent: accepted 3" in result.output, result.output
    assert result.exit_code == 0, result.output


def test_sync_status_shows_the_site_zone(linked: Linked, store: Store, tmp_path: Path) -> None:
    from kiosk.cli.main import app as cli

    seed_elders(store)
    ids = add_records(store, linked.device_id, 1)
    assert linked.runner.upload_job() is True
    with store.write() as s:
        s.execute(
            update(Outbox)
            .where(Outbox.record_id == ids[0])
            .values(uploaded_at=dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC))
        )
    config = _config(tmp_path, linked.device_id)
    result = CliRunner().invoke(
        cli, ["--config", str(config), "--data-dir", str(store.db_path.parent), "sync", "--status"]
    )
    assert result.exit_code == 0, result.output
    assert "last success: 2026-12-02T11:00:00+08:00" in result.output
