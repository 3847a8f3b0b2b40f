"""A throwaway PostgreSQL server for the benchmarks (the tests start theirs the same way, in
tests/support/platform.py; bench/ imports nothing of tests/). fsync stays ON here unlike the
tests': the figures are for a platform that keeps what it acknowledged."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port
from bench.harness import Skip

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Postgres:
    host: str
    port: int
    root: Path

    def new_database(self, collate_c: bool = False) -> str:
        """A fresh database (with `collate_c`, text compared byte-wise: ids sort by memcmp);
        its SQLAlchemy URL."""
        import psycopg

        name = "b_" + uuid.uuid4().hex[:12]
        extra = " TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'" if collate_c else ""
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}{extra}")
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"

    def postmaster_pid(self) -> int:
        """The server's main process (its backends are its children): for CPU accounting."""
        return int((self.root / "data" / "postmaster.pid").read_text().split()[0])

    def conninfo(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={dbname}"

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.conninfo("postgres")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


@contextlib.contextmanager
def running_postgres(settings: dict[str, str] | None = None) -> Iterator[Postgres]:
    """PostgreSQL 15 on a free port in a temporary folder, stopped and removed on exit."""
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not initdb.is_file():
        raise Skip("PostgreSQL 15 binaries are not installed (/usr/lib/postgresql/15/bin)")
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run(
        [*as_user, str(initdb), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
         "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    conf = {
        "listen_addresses": "127.0.0.1",
        "max_connections": "300",
        "shared_buffers": "512MB",
        "synchronous_commit": "on",
        "wal_compression": "on",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        **(settings or {}),
    }
    options = f"-p {port} -k {root} " + " ".join(f"-c {k}={v}" for k, v in conf.items())
    subprocess.run(
        [*as_user, str(pg_ctl), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
         "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield Postgres("127.0.0.1", port, root)
    finally:
        subprocess.run(
            [*as_user, str(pg_ctl), "-D", str(data), "-m", "fast", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
