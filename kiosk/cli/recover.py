"""`kiosk recover --from-platform`: the technician's way back from a rolled-back chain."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console

from kiosk.cli.context import context_of

out = Console()
err = Console(stderr=True)
recover_app = typer.Typer()


@recover_app.command("recover")
def recover_command(
    ctx: typer.Context,
    from_platform: Annotated[
        bool,
        typer.Option(
            "--from-platform", help="restore the records the platform holds and this terminal lost"
        ),
    ] = False,
) -> None:
    """Restore lost records from the platform's copy (after `kiosk doctor` reports a rollback).

    Stop the daemon first (systemctl stop kiosk); every restored record must continue this
    terminal's chain and carry its own signature, or nothing of that page is written."""
    from kiosk.checkin.rules import platform_verifier
    from sync.client import PlatformClient, PlatformError
    from sync.recovery import recover_from_platform
    from sync.rollback import rollback_problem
    from sync.signing import DeviceKeyError, default_key_path, load_device_key

    if not from_platform:
        err.print("say where to recover from: kiosk recover --from-platform", style="red")
        raise typer.Exit(2)
    context = context_of(ctx)
    config = context.config()
    if not config.platform.url:
        err.print("no platform.url in config.yaml: nothing to recover from", style="red")
        raise typer.Exit(2)
    token = _token()
    try:
        key = load_device_key(default_key_path(context.data_dir))
    except DeviceKeyError as exc:
        err.print(str(exc), style="red")
        raise typer.Exit(2) from None
    platform = platform_verifier(config)
    if platform is None:
        err.print("platform.public_key is not set: the platform's answer cannot be checked",
                  style="yellow")  # fmt: skip
    store = context.store()  # a damaged database: exit 2 with the way out, like every command
    try:
        with PlatformClient(config.platform.url, token) as client:
            result = recover_from_platform(
                store, client, key, config.device.device_id, platform, dt.datetime.now(dt.UTC)
            )
        out.print(f"restored {result.restored} records; chain head now seq {result.head_seq}")
        if result.problem:
            err.print(f"stopped: {result.problem}", style="red")
            raise typer.Exit(1)
        still = rollback_problem(store, platform)
        if still:
            err.print(f"still {still}", style="red")
            raise typer.Exit(1)
        out.print("the chain reaches everything the platform acknowledged: check-in may resume")
    except PlatformError as exc:
        err.print(f"platform: {exc}", style="red")
        raise typer.Exit(1) from None
    finally:
        store.close()


def _token() -> str:
    """The device token, or exit 2 saying why there is none to use."""
    from kiosk.config import load_secret
    from kiosk.secret_files import SecretFileError

    try:
        token = load_secret("device-token")
    except SecretFileError as exc:
        err.print(str(exc), style="red")
        raise typer.Exit(2) from None
    if not token:
        err.print("no device token (not provisioned): kiosk provision first", style="red")
        raise typer.Exit(2)
    return token
