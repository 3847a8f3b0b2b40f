"""`kiosk db upgrade|backup|restore`: database maintenance by hand (stop the daemon to restore)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kiosk.cli.context import context_of

out = Console()
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending database migrations (after a backup, if any are due)."""
    store = context_of(ctx).store()
    out.print(f"database {store.db_path} at revision {store.schema_revision()}")
    store.close()


@db_app.command("backup")
def db_backup(ctx: typer.Context) -> None:
    """Write a consistent backup (SQLite online backup API) to <data-dir>/backups/."""
    from kiosk.ops.storage import backup

    context = context_of(ctx)
    store = context.store()
    try:
        out.print(f"backup written: {backup(store, context.data_dir)}")
    finally:
        store.close()


@db_app.command("restore")
def db_restore(
    ctx: typer.Context, backup_file: Annotated[Path, typer.Argument(help="a backup .db file")]
) -> None:
    """Replace the database with a backup (stop the daemon first); the current one is kept."""
    from kiosk.ops.storage import DB_FILE, restore

    context = context_of(ctx)
    try:
        aside = restore(context.data_dir / DB_FILE, backup_file)
    except (ValueError, OSError) as exc:
        typer.echo(f"restore refused: {exc}", err=True)
        raise typer.Exit(2) from None
    out.print(f"restored from {backup_file}; previous database kept as {aside}")
