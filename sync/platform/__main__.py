"""`python -m sync.platform --db URL --port N`: run the reference county platform under uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from sync.platform.app import create_platform_app
from sync.platform.keys import load_or_create_platform_key
from sync.wire import b64encode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.platform", description=__doc__)
    parser.add_argument("--db", default="sqlite:///platform.db", help="SQLAlchemy URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--key", type=Path, default=Path("platform.key"), help="Ed25519 PEM")
    parser.add_argument(
        "--admin-token",
        default=os.environ.get("PLATFORM_ADMIN_TOKEN"),
        help="operator bearer token (or PLATFORM_ADMIN_TOKEN)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("sync.platform")
    if not args.admin_token:
        parser.error("an operator token is required: --admin-token or PLATFORM_ADMIN_TOKEN")
    key = load_or_create_platform_key(args.key)
    log.info(
        "platform public key (give it to the kiosks): %s",
        b64encode(key.public_key().public_bytes_raw()),
    )
    app = create_platform_app(args.db, key, args.admin_token)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
