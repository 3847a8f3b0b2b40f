"""`kiosk sync`: one upload round by hand (with a progress bar) followed by a reconciliation
with the platform, and `kiosk sync --status`.

Instants are stored in UTC (the daemon does the same) and shown in the site's zone."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:  # the command imports these when it runs (a fast `kiosk --help`)
    from kiosk.config import KioskConfig
    from models.db import Store
    from sync.client import PlatformClient
    from sync.uploader import Uploader

from kiosk.cli.context import context_of

log = logging.getLogger(__name__)
out = Console()
err = Console(stderr=True)


# A top-level command (main.py adds this group without a name).
sync_app = typer.Typer()


@sync_app.command("sync")
def sync_command(
    ctx: typer.Context,
    status: Annotated[
        bool, typer.Option("--status", help="show pending/rejected records; send nothing")
    ] = False,
) -> None:
    """Upload pending records to the county platform now (or show the upload status)."""
    context = context_of(ctx)
    config = context.config()
    store = context.store()
    try:
        if status:
            _show_status(store, config.site.tz)
        else:
            raise typer.Exit(_upload(store, config, context.data_dir))
    finally:
        store.close()


def _local(stamp: dt.datetime, zone: dt.tzinfo) -> str:
    return stamp.astimezone(zone).isoformat(timespec="seconds")


def _show_status(store: Store, zone: dt.tzinfo) -> None:
    from sync.status import sync_status

    s = sync_status(store)
    out.print(f"pending:   {s.pending}")
    out.print(f"uploaded:  {s.uploaded}")
    out.print(f"rejected:  {len(s.rejected)}")
    last = _local(s.last_success_at, zone) if s.last_success_at else "never"
    out.print(f"last success: {last}")
    if s.oldest_pending_at:
        out.print(f"oldest pending record: {_local(s.oldest_pending_at, zone)}")
    if s.last_error:
        out.print(f"last error: {s.last_error}", style="red")
    from sync.county_cards import list_status

    cc = list_status(store)
    if cc.version is not None or cc.checked_at is not None:
        checked = _local(cc.checked_at, zone) if cc.checked_at else "never"
        applied = _local(cc.applied_at, zone) if cc.applied_at else "never"
        out.print(
            f"county card list: version {cc.version}, {cc.cards} cards of other points, "
            f"written {applied}; last checked {checked} ({cc.last_outcome or '-'})"
        )
    if s.rejected:
        table = Table("seq", "date", "record", "reason", title="rejected by the platform")
        for r in s.rejected:
            table.add_row(str(r.seq), r.service_date.isoformat(), r.record_id, r.reason)
        out.print(table)


def _upload(store: Store, config: KioskConfig, data_dir: Path) -> int:
    from kiosk.config import load_secret
    from kiosk.secret_files import SecretFileError
    from sync.client import PlatformClient, PlatformError
    from sync.signing import DeviceKeyError, default_key_path, load_device_key
    from sync.uploader import Uploader, pending_count

    if not config.platform.url:
        err.print("no platform.url in config.yaml: this kiosk runs offline", style="red")
        return 2
    try:
        token = load_secret("device-token")
    except SecretFileError as exc:
        err.print(str(exc), style="red", soft_wrap=True)  # paths unbroken
        return 2
    if not token:
        err.print("no device token (KIOSK_DEVICE_TOKEN or credential device-token)", style="red")
        return 2
    try:
        key = load_device_key(default_key_path(data_dir))
    except DeviceKeyError as exc:
        err.print(str(exc), style="red")
        return 2
    total = pending_count(store)
    if total == 0:
        out.print("nothing to upload")
    with PlatformClient(config.platform.url, token) as client:
        uploader = Uploader(
            store,
            client,
            key,
            config.device.device_id,
            batch_size=config.platform.batch_size,
            clock=lambda: dt.datetime.now(dt.UTC),  # stored instants are UTC
        )
        try:
            from sync.checkpoint import push_checkpoint

            push_checkpoint(store, client, key, config.device.device_id, uploader.clock())
        except PlatformError as exc:
            err.print(f"checkpoint not sent: {exc}", style="yellow")
        columns = (
            TextColumn("uploading"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=out, disable=total == 0) as bar:
            task = bar.add_task("upload", total=total)
            result = uploader.run_round(
                progress=lambda done, of: bar.update(task, completed=done, total=of)
            )
        out.print(
            f"accepted {result.accepted}, duplicate {result.duplicate}, "
            f"rejected {result.rejected}, {result.pending_left} still pending"
        )
        if not result.ok:
            err.print(f"upload stopped: {result.error}", style="red")
            return 1
        return _reconcile(store, client, uploader, config)


def _reconcile(
    store: Store, client: PlatformClient, uploader: Uploader, config: KioskConfig
) -> int:
    """Compare per-day counts with the platform; re-send what it lacks, now."""
    from sync.client import PlatformError
    from sync.reconcile import reconcile

    now = dt.datetime.now(dt.UTC)
    last = (now + dt.timedelta(days=1)).date()  # today in any zone ahead of UTC
    first = last - dt.timedelta(days=config.platform.reconcile_days + 1)
    try:
        outcome = reconcile(store, client, first, last, now)
    except PlatformError as exc:
        err.print(f"reconciliation failed: {exc}", style="red")
        return 1
    out.print(
        f"reconciled {outcome.days_checked} days with the platform: "
        f"{len(outcome.differing)} differed, {outcome.resent} records re-queued"
    )
    if outcome.resent:
        again = uploader.run_round()
        out.print(f"re-sent: accepted {again.accepted}, {again.pending_left} still pending")
        if not again.ok:
            err.print(f"upload stopped: {again.error}", style="red")
            return 1
    return 0
