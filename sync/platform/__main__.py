"""`python -m sync.platform [serve] --db URL --port N`: run the reference county platform.

Administrative subcommands talk to a running platform over HTTP; every secret (the
administrator's bootstrap token, an operator's token) is read from a file or stdin ("-"),
never from the command line where `ps` shows it:

  python -m sync.platform serve --db URL --key platform.key --admin-token-file admin.tok
  python -m sync.platform create-operator --platform URL --token-file admin.tok --name li \\
      --township 城关镇
  python -m sync.platform create-point --platform URL --token-file admin.tok --point ZY-01 \\
      --township 城关镇
  python -m sync.platform issue-code --platform URL --token-file op.tok --point ZY-01
  python -m sync.platform retire --platform URL --token-file op.tok --device D --reason stolen
  python -m sync.platform rekey --platform URL --token-file op.tok --device D --reason "new SD"
  python -m sync.platform alerts --platform URL --token-file op.tok [--device D]
  python -m sync.platform verify --platform URL --token-file admin.tok

The monthly settlement reads the database directly (no token: whoever runs it holds the DB):

  python -m sync.platform settle --db URL --month 2026-11 --out settlement-2026-11.xlsx
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from sync.platform.admin_client import AdminClient, AdminError
from sync.platform.credentials import SecretSourceError, read_secret

SECRET_FLAGS = ("--admin-token", "--token", "--code")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sync.platform.app import create_platform_app, freeze_startup_objects
    from sync.platform.keys import load_or_create_platform_key
    from sync.platform.state import Limits
    from sync.wire import b64encode

    log = logging.getLogger("sync.platform")
    admin_token = read_secret(args.admin_token_file) if args.admin_token_file else None
    key = load_or_create_platform_key(args.key)
    log.info(
        "platform public key (give it to the kiosks): %s",
        b64encode(key.public_key().public_bytes_raw()),
    )
    limits = Limits(
        verify_interval_s=args.verify_interval,
        signatures=args.signatures,
        signature_interval_s=args.signature_interval,
    )
    if args.workers > 1:
        from sqlalchemy.orm import sessionmaker

        from sync.platform.app import make_platform_engine, prepare_database
        from sync.platform.routers.admin import ensure_admin
        from sync.platform.state import PlatformState
        from sync.platform.workers import serve_workers

        engine = make_platform_engine(args.db)
        prepare_database(engine)  # once, before the workers start
        if admin_token:
            ensure_admin(
                PlatformState(sessionmaker(engine), key, limits=limits), "admin", admin_token
            )
        engine.dispose()
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        serve_workers(args.db, args.key, limits, args.host, args.port, args.workers, level)
        return 0
    app = create_platform_app(args.db, key, admin_token, limits=limits)
    freeze_startup_objects()
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


def _settle(args: argparse.Namespace) -> int:
    """Write a month's settlement as XLSX: the frozen, signed one if the month is closed,
    otherwise a draft as the records stand now."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from sync.platform import schema_upgrade, settlement
    from sync.platform.app import make_platform_engine
    from sync.platform.console.xlsx import write_settlement
    from sync.platform.tables import MealPoint, PlatformBase

    try:
        settlement.month_bounds(args.month)
    except settlement.SettlementError as exc:
        _err(f"error: {exc}")
        return 2
    engine = make_platform_engine(args.db)
    schema_upgrade.upgrade(engine)  # columns and the claims table of an older database
    PlatformBase.metadata.create_all(engine)  # new tables of an older platform database
    with Session(engine) as session:
        result = settlement.load(session, args.month)
        names = {p.point_id: p.name for p in session.scalars(select(MealPoint))}
    engine.dispose()
    write_settlement(result, args.out, names)
    _print({
        "month": args.month, "closed": result.closed is not None,
        "meals": result.total_meals, "amount": str(result.total_amount),
        "exceptions": len(result.exceptions), "out": str(args.out),
    })  # fmt: skip
    return 0


def _client(args: argparse.Namespace) -> AdminClient:
    http = httpx.Client(base_url=args.platform.rstrip("/"), timeout=30)
    return AdminClient(http, read_secret(args.token_file))


def _print(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _create_point(args: argparse.Namespace) -> object:
    _client(args).create_point(args.point, args.township, args.point_name)
    return {"point_id": args.point, "township": args.township}


COMMANDS: dict[str, Callable[[argparse.Namespace], object]] = {
    "create-operator": lambda a: {
        "name": a.name,
        "token": _client(a).create_operator(a.name, a.township),
        "note": "shown once: hand it to the operator and keep it in a 0600 file",
    },
    "create-point": _create_point,
    "issue-code": lambda a: {"point_id": a.point, "code": _client(a).issue_code(a.point, a.ttl)},
    "retire": lambda a: _client(a).retire(a.device, a.reason),
    "rekey": lambda a: {"device_id": a.device, "code": _client(a).rekey(a.device, a.reason)},
    "alerts": lambda a: _client(a).alerts(device_id=a.device, point_id=a.point),
    "verify": lambda a: _client(a).verify(),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sync.platform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the platform under uvicorn (the default)")
    serve.add_argument("--db", default="sqlite:///platform.db", help="SQLAlchemy URL")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8900)
    serve.add_argument("--key", type=Path, default=Path("platform.key"), help="Ed25519 PEM")
    serve.add_argument(
        "--admin-token-file",
        help="file (or - for stdin) with the county administrator's bootstrap token",
    )
    serve.add_argument(
        "--verify-interval", type=float, default=300.0,
        help="seconds between completeness sweeps (0: off)",
    )  # fmt: skip
    serve.add_argument(
        "--signatures", choices=("inline", "deferred"), default="inline",
        help="check record signatures on the request path, or in the background verifier "
        "(hash, chain and checkpoints still checked at ingest; forgeries alerted)",
    )  # fmt: skip
    serve.add_argument(
        "--signature-interval", type=float, default=1.0,
        help="seconds between deferred verifier rounds (0: no verifier in this process)",
    )  # fmt: skip
    serve.add_argument(
        "--workers", type=int, default=1,
        help="request processes (PostgreSQL; >1 also moves the completeness sweep and the "
        "deferred verifier to a background process of their own)",
    )  # fmt: skip
    serve.add_argument("--log-level", default=argparse.SUPPRESS)
    settle = sub.add_parser("settle", help="write a month's settlement as XLSX (reads the DB)")
    settle.add_argument("--db", required=True, help="SQLAlchemy URL of the platform database")
    settle.add_argument("--month", required=True, help="YYYY-MM")
    settle.add_argument("--out", type=Path, required=True, help="the .xlsx file to write")
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("--platform", required=True, help="platform base URL")
        p.add_argument("--token-file", required=True, help="your token: a file, or - for stdin")
        if name == "create-operator":
            p.add_argument("--name", required=True)
            p.add_argument("--township", required=True)
        if name in ("create-point", "issue-code", "alerts"):
            p.add_argument("--point", required=name != "alerts")
        if name == "create-point":
            p.add_argument("--township", required=True)
            p.add_argument("--name", dest="point_name", default="")
        if name == "issue-code":
            p.add_argument("--ttl", type=float, default=24, help="hours the code stays valid")
        if name in ("retire", "rekey", "alerts"):
            p.add_argument("--device", required=name != "alerts")
        if name in ("retire", "rekey"):
            p.add_argument("--reason", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for arg in argv:
        if arg.split("=", 1)[0] in SECRET_FLAGS:
            _err(
                f"{arg.split('=', 1)[0]} is not accepted: secrets on the command line are visible "
                "to every user in `ps`. Use --admin-token-file / --token-file (a 0600 file, or - "
                "for stdin)."
            )
            return 2
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]  # `python -m sync.platform --db ...` as before
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "settle":
            return _settle(args)
        _print(COMMANDS[args.command](args))
    except SecretSourceError as exc:
        _err(f"error: {exc}")
        return 2
    except (AdminError, httpx.HTTPError) as exc:
        _err(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
