"""What every `kiosk` command starts from: the config file and the data directory.

Commands get it as `ctx.obj` (set by the main callback) and open the database only through
`Context.store()`, so a damaged database is one clear message and exit 2 in every command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # imported when a command runs: `kiosk --help` stays fast
    from kiosk.config import KioskConfig
    from models.db import Store


def default_data_dir() -> Path:
    # Under systemd, StateDirectory= sets STATE_DIRECTORY.
    return Path(os.environ.get("STATE_DIRECTORY", "data"))


class Context:
    def __init__(self, config_path: Path, data_dir: Path) -> None:
        self.config_path = config_path
        self.data_dir = data_dir

    def config(self) -> KioskConfig:
        """The validated config, or exit 2 with one line per problem."""
        from kiosk.config import ConfigError, load_config

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


def context_of(ctx: typer.Context) -> Context:
    """The Context the main callback put on the typer context."""
    context = ctx.obj
    if not isinstance(context, Context):
        raise RuntimeError("kiosk command run without the main callback (kiosk.cli.main.app)")
    return context
