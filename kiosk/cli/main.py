"""The `kiosk` command (also `python -m kiosk`)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kiosk.config import ConfigError, KioskConfig, load_config
from kiosk.runtime.logs import setup_logging
from models.db import Store

log = logging.getLogger(__name__)
out = Console()
err = Console(stderr=True)

app = typer.Typer(
    help="Haolinju Kiosk: check-in terminal for village meal points.", no_args_is_help=True
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
roster_app = typer.Typer(help="The roster of elders.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(roster_app, name="roster")


class Context:
    def __init__(self, config_path: Path, data_dir: Path) -> None:
        self.config_path = config_path
        self.data_dir = data_dir

    def config(self) -> KioskConfig:
        """The validated config, or exit 2 with one line per problem."""
        try:
            return load_config(self.config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            raise typer.Exit(2) from None

    def store(self) -> Store:
        """The checked, migrated database, or exit 2 saying why and the way out."""
        from kiosk.ops.storage import StoreDamagedError, open_store

        try:
            return open_store(self.data_dir)
        except StoreDamagedError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None


def _default_data_dir() -> Path:
    # Under systemd, StateDirectory= sets STATE_DIRECTORY.
    return Path(os.environ.get("STATE_DIRECTORY", "data"))


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path, typer.Option("--config", envvar="KIOSK_CONFIG", help="config.yaml to use")
    ] = Path("config.yaml"),
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="KIOSK_DATA_DIR", help="where the database lives"),
    ] = None,
) -> None:
    ctx.obj = Context(config, data_dir or _default_data_dir())


@app.command("validate-config")
def validate_config(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="defaults to --config")] = None,
) -> None:
    """Check a config file: exit 0 if valid, else 2 with one line per problem."""
    context: Context = ctx.obj
    if path is not None:
        context = Context(path, context.data_dir)
    config = context.config()
    out.print(
        f"{context.config_path}: ok (site {config.site.point_id}, device {config.device.device_id})"
    )


@app.command()
def run(ctx: typer.Context) -> None:
    """Run the kiosk daemon (readers, check-in, local web page)."""
    from kiosk.runtime.daemon import Daemon, build_services

    context: Context = ctx.obj
    config = context.config()
    setup_logging(config.logging)
    services = build_services(config, context.data_dir, store=context.store())
    raise typer.Exit(Daemon(services).run())


@app.command()
def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="web port")] = 8080,
    pace: Annotated[float, typer.Option(help="mean seconds between simulated taps")] = 4.0,
    platform: Annotated[
        bool, typer.Option(help="run the reference county platform and upload to it")
    ] = True,
) -> None:
    """Run a demo kiosk: seeded roster, simulated reader, reference platform, temporary data."""
    from kiosk.demo.seed import run_demo

    context: Context = ctx.obj
    config = context.config()
    setup_logging(config.logging)
    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as tmp:
        raise typer.Exit(run_demo(config, Path(tmp), port, pace, with_platform=platform))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending database migrations (after a backup, if any are due)."""
    context: Context = ctx.obj
    store = context.store()
    out.print(f"database {store.db_path} at revision {store.schema_revision()}")
    store.close()


@db_app.command("backup")
def db_backup(ctx: typer.Context) -> None:
    """Write a consistent backup (SQLite online backup API) to <data-dir>/backups/."""
    from kiosk.ops.storage import backup

    context: Context = ctx.obj
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

    context: Context = ctx.obj
    try:
        aside = restore(context.data_dir / DB_FILE, backup_file)
    except (ValueError, OSError) as exc:
        typer.echo(f"restore refused: {exc}", err=True)
        raise typer.Exit(2) from None
    out.print(f"restored from {backup_file}; previous database kept as {aside}")


@app.command()
def maintenance(ctx: typer.Context) -> None:
    """Nightly upkeep: backup, integrity check, WAL checkpoint, backup retention."""
    from kiosk.ops.storage import nightly

    context: Context = ctx.obj
    setup_logging(context.config().logging)
    store = context.store()
    try:
        report = nightly(store, context.data_dir)
    finally:
        store.close()
    out.print(
        f"backup {report.backup}; integrity {report.integrity}; "
        f"WAL checkpoint {report.checkpoint}; pruned {len(report.pruned)} old backup(s)"
    )
    if report.integrity != "ok":
        raise typer.Exit(1)


@roster_app.command("import")
def roster_import(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="CSV or XLSX from the county")]
) -> None:
    """Import a roster file; a file with any bad row is refused whole."""
    from kiosk.ops.roster_import import RosterError, import_roster

    context: Context = ctx.obj
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


@app.command()
def provision(
    ctx: typer.Context,
    platform: Annotated[str, typer.Option("--platform", help="county platform base URL")],
    code_file: Annotated[
        str | None,
        typer.Option(
            "--code-file",
            help="file with the one-time enrolment code (- for stdin; asked for if omitted)",
        ),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", hidden=True)] = None,
    device_id: Annotated[str | None, typer.Option("--device-id", help="default: config")] = None,
    credentials_dir: Annotated[
        Path | None,
        typer.Option("--credentials-dir", help="default: /etc/haolinju-kiosk/credentials"),
    ] = None,
) -> None:
    """Register this terminal with the platform: signing key, device token (0600). Safe twice."""
    from kiosk.ops.provision import ProvisionError, read_code
    from kiosk.ops.provision import provision as do_provision

    context: Context = ctx.obj
    config = context.config()
    device_id = device_id or config.device.device_id
    if device_id != config.device.device_id:
        typer.echo(
            f"--device-id {device_id} differs from device.device_id "
            f"{config.device.device_id} in {context.config_path}; make them the same first",
            err=True,
        )
        raise typer.Exit(2)
    if token is not None:
        typer.echo(
            "--token is not accepted: a secret on the command line is visible in `ps`. Put the "
            "enrolment code in a file (--code-file FILE), pipe it (--code-file -), or type it "
            "when asked.",
            err=True,
        )
        raise typer.Exit(2)
    cred_dir = credentials_dir or Path("/etc/haolinju-kiosk/credentials")
    try:
        if code_file:
            code = read_code(code_file)
        else:
            code = typer.prompt("enrolment code (from the township operator)", hide_input=True)
        done = do_provision(platform, device_id, config.site.point_id, code, cred_dir)
    except ProvisionError as exc:
        typer.echo(f"provisioning failed: {exc}", err=True)
        raise typer.Exit(1) from None
    state = "registered now" if done.newly_registered else "already provisioned, unchanged"
    out.print(f"[bold]{state}[/]. Write down for the county's device register:")
    out.print(f"  device id      {done.device_id}")
    out.print(f"  meal point     {done.point_id}")
    out.print(f"  platform       {done.platform}")
    out.print(f"  key fingerprint {done.fingerprint}")
    out.print(f"  credentials    {done.credentials_dir} (device-key, device-token; mode 0600)")


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Check config, database, disk, clock, readers (and the card on them), camera, backlog."""
    from rich.table import Table

    from kiosk.ops.doctor import Level, run_checks

    context: Context = ctx.obj
    try:
        config = load_config(context.config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"config: {problem}", err=True)
        raise typer.Exit(2) from None
    checks = run_checks(config, context.data_dir, context.store)
    colour = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}
    table = Table("check", "", "detail", "fix")
    for c in checks:
        table.add_row(c.name, f"[{colour[c.level]}]{c.level}[/]", c.detail, c.fix)
    out.print(table)
    if any(c.blocking for c in checks):
        raise typer.Exit(1)


from kiosk.cli.face import register as register_face  # noqa: E402

register_face(app)

from kiosk.cli.sync import register as register_sync  # noqa: E402

register_sync(app)

from kiosk.cli.caregiver import register as register_caregiver  # noqa: E402

register_caregiver(app)


def main() -> None:
    app(prog_name="kiosk")


if __name__ == "__main__":
    main()
