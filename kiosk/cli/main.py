"""The `kiosk` command (also `python -m kiosk`): the top-level commands and every group.

Each group lives in its own module and is imported here at the top: db.py (`kiosk db ...`),
roster.py (`kiosk roster import`), caregiver.py (`kiosk caregiver ...`), export.py
(`kiosk export monthly`), face.py (`kiosk enroll|identify|unenroll`) and sync.py
(`kiosk sync`). Heavy imports (dlib, OpenCV, the daemon) happen inside the command that needs
them, so `kiosk --help` stays fast. Every command opens the database through
`Context.store()` (context.py): a damaged one is a clear message and exit 2, not a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kiosk.cli.caregiver import caregiver_app
from kiosk.cli.context import Context, context_of, default_data_dir
from kiosk.cli.db import db_app
from kiosk.cli.export import export_app
from kiosk.cli.face import face_app
from kiosk.cli.recover import recover_app
from kiosk.cli.roster import roster_app
from kiosk.cli.sync import sync_app

out = Console()

app = typer.Typer(
    help="Haolinju Kiosk: check-in terminal for village meal points.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(roster_app, name="roster")
app.add_typer(caregiver_app, name="caregiver")
app.add_typer(export_app, name="export")  # `kiosk export monthly`: the 公示 diner list
app.add_typer(face_app)  # no group name: `kiosk enroll`, `kiosk identify`, `kiosk unenroll`
app.add_typer(sync_app)  # no group name: `kiosk sync [--status]`
app.add_typer(recover_app)  # no group name: `kiosk recover --from-platform`


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
    ctx.obj = Context(config, data_dir or default_data_dir())


@app.command("validate-config")
def validate_config(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="defaults to --config")] = None,
) -> None:
    """Check a config file: exit 0 if valid, else 2 with one line per problem."""
    context = context_of(ctx)
    if path is not None:
        context = Context(path, context.data_dir)
    config = context.config()
    out.print(
        f"{context.config_path}: ok (site {config.site.point_id}, device {config.device.device_id})"
    )
    from kiosk.config import config_warnings

    for warning in config_warnings(config):
        out.print(f"warning: {warning}", style="yellow")


@app.command()
def run(ctx: typer.Context) -> None:
    """Run the kiosk daemon (readers, check-in, local web page)."""
    from kiosk.runtime.daemon import Daemon, build_services
    from kiosk.runtime.logs import setup_logging

    context = context_of(ctx)
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
    from kiosk.runtime.logs import setup_logging

    context = context_of(ctx)
    config = context.config()
    setup_logging(config.logging)
    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as tmp:
        raise typer.Exit(run_demo(config, Path(tmp), port, pace, with_platform=platform))


@app.command()
def maintenance(ctx: typer.Context) -> None:
    """Nightly upkeep: backup, integrity check, WAL checkpoint, backup retention."""
    from kiosk.ops.storage import nightly
    from kiosk.runtime.logs import setup_logging

    context = context_of(ctx)
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

    context = context_of(ctx)
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
        done = do_provision(
            platform, device_id, config.site.point_id, code, cred_dir,
            adopt_key=context.data_dir / "keys" / "device.key",  # records signed before now
        )  # fmt: skip
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

    from kiosk.config import ConfigError, load_config
    from kiosk.ops.doctor import Level, run_checks

    context = context_of(ctx)
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


def main() -> None:
    app(prog_name="kiosk")


if __name__ == "__main__":
    main()
