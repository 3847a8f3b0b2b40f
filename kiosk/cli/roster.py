"""`kiosk roster import FILE`: the county's roster (CSV or XLSX), all rows or none."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kiosk.cli.context import context_of

out = Console()
err = Console(stderr=True)
roster_app = typer.Typer(help="The roster of elders.", no_args_is_help=True)


@roster_app.command("import")
def roster_import(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="CSV or XLSX from the county")]
) -> None:
    """Import a roster file; a file with any bad row is refused whole."""
    from kiosk.ops.roster_import import RosterError, import_roster

    context = context_of(ctx)
    config = context.config()
    store = context.store()
    try:
        report = import_roster(
            store, file, config.roster.card_format, dt.datetime.now(config.site.tz)
        )
    except RosterError as exc:
        for problem in exc.problems:
            typer.echo(f"{file}: {problem}", err=True)
        err.print("nothing was imported", style="bold red")
        raise typer.Exit(2) from None
    finally:
        store.close()
    out.print(
        f"imported {len(report.rows)} elders from {file}: "
        f"{report.added} new, {report.updated} updated, {report.cards} cards"
    )
