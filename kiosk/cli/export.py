"""`kiosk export monthly --month 2026-11 --format csv|xlsx|html`: the 公示 diner list."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kiosk import STATIC_DIR, TEMPLATES_DIR
from kiosk.cli.context import context_of
from kiosk.touchscreen.notices import (
    MonthlyReport,
    chart_svg,
    monthly_report,
    parse_month,
    to_csv,
    to_xlsx,
)

export_app = typer.Typer(help="Exports for the notice board (公示).", no_args_is_help=True)


class Format(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    HTML = "html"


def monthly_html(report: MonthlyReport, site_name: str) -> bytes:
    """A standalone printable page (no server needed), same template as the touchscreen."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    from kiosk.touchscreen.notices import header, table_rows, totals_row

    templates = TEMPLATES_DIR
    env = Environment(loader=FileSystemLoader(templates), autoescape=select_autoescape())
    css = (STATIC_DIR / "kiosk.css").read_text(encoding="utf-8")
    css += (STATIC_DIR / "ui.css").read_text(encoding="utf-8")
    html = env.get_template("monthly_export.html").render(
        site_name=site_name,
        report=report,
        header=header(report),
        rows=table_rows(report),
        totals=totals_row(report),
        fixed_cols=6 + len(report.slots),
        chart=Markup(chart_svg(report)),
        css=Markup(css),
        printed=dt.datetime.now().astimezone(),
    )
    return html.encode("utf-8")


@export_app.command("monthly")
def monthly(
    ctx: typer.Context,
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    fmt: Annotated[Format, typer.Option("--format", help="csv | xlsx | html")] = Format.CSV,
    out: Annotated[
        Path | None, typer.Option("--out", help="file to write; default monthly-YYYY-MM.<format>")
    ] = None,
) -> None:
    """每月用餐人员明细: per elder the days and meals, with totals."""
    context = context_of(ctx)
    try:
        year, mon = parse_month(month)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    config = context.config()
    store = context.store()
    try:
        report = monthly_report(store, year, mon)
    finally:
        store.close()
    if fmt is Format.CSV:
        body = to_csv(report)
    elif fmt is Format.XLSX:
        body = to_xlsx(report, config.site.name)
    else:
        body = monthly_html(report, config.site.name)
    target = out or Path(f"monthly-{year}-{mon:02d}.{fmt}")
    target.write_bytes(body)
    typer.echo(f"{target}: {len(report.rows)} elders, {report.total_meals} meals")
