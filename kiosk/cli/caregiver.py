"""`kiosk caregiver ...`: the caregivers who may sign in on the touchscreen with a PIN."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console

from kiosk.cli.context import context_of
from kiosk.touchscreen.caregivers import ROLES, CaregiverBook, PinError
from models.db import Store

out = Console()
caregiver_app = typer.Typer(help="Caregivers (养老护理员) and their PINs.", no_args_is_help=True)


def _book(ctx: typer.Context) -> tuple[CaregiverBook, Store]:
    context = context_of(ctx)
    config = context.config()
    store = context.store()
    return CaregiverBook(store, config.ui, lambda: dt.datetime.now(config.site.tz)), store


PinOption = Annotated[
    str,
    typer.Option(
        "--pin",
        prompt="PIN (4-8 digits)",
        hide_input=True,
        confirmation_prompt=True,
        help="4-8 digits; asked for (hidden, twice) when not given",
    ),
]


@caregiver_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="name as shown on the screen and the notices")],
    pin: PinOption,
    phone: Annotated[str, typer.Option(help="phone, shown on the 公示 notice")] = "",
    in_charge: Annotated[
        bool, typer.Option("--in-charge", help="the person in charge (负责人)")
    ] = False,
    caregiver_id: Annotated[
        str | None, typer.Option("--id", help="id as known to the platform; default C001...")
    ] = None,
) -> None:
    """Add a caregiver; the PIN is stored only as a salted scrypt hash."""
    book, store = _book(ctx)
    try:
        row = book.add(
            name, pin, phone, "in_charge" if in_charge else "caregiver", caregiver_id=caregiver_id
        )
    except (PinError, ValueError) as exc:
        typer.echo(f"not added: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    out.print(f"caregiver {row.caregiver_id} {row.name} ({ROLES[row.role]}) added")


@caregiver_app.command("list")
def list_(ctx: typer.Context) -> None:
    """List caregivers, with locks."""
    book, store = _book(ctx)
    try:
        rows = book.all(active_only=False)
    finally:
        store.close()
    for r in rows:
        state = "active" if r.active else "inactive"
        if r.locked_until and r.locked_until > book.clock():
            state += f", locked until {r.locked_until:%H:%M}"
        out.print(f"{r.caregiver_id}\t{r.name}\t{ROLES[r.role]}\t{r.phone}\t{state}")


def _simple(ctx: typer.Context, caregiver_id: str, action: str) -> None:
    book, store = _book(ctx)
    try:
        getattr(book, action)(caregiver_id)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()


@caregiver_app.command("unlock")
def unlock(ctx: typer.Context, caregiver_id: str) -> None:
    """Lift a PIN lock now."""
    _simple(ctx, caregiver_id, "unlock")
    out.print(f"{caregiver_id} unlocked")


@caregiver_app.command("remove")
def remove(ctx: typer.Context, caregiver_id: str) -> None:
    """Deactivate a caregiver (kept: records name her)."""
    _simple(ctx, caregiver_id, "deactivate")
    out.print(f"{caregiver_id} deactivated")


@caregiver_app.command("set-pin")
def set_pin(ctx: typer.Context, caregiver_id: str, pin: PinOption) -> None:
    """Give a caregiver a new PIN (also lifts a lock)."""
    book, store = _book(ctx)
    try:
        book.set_pin(caregiver_id, pin)
    except (PinError, KeyError) as exc:
        typer.echo(f"not changed: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    out.print(f"{caregiver_id}: PIN changed")
