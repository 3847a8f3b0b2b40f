"""Logging set-up: plain lines for journald under systemd, timestamps on a terminal."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str = "INFO") -> None:
    # journald stamps each line itself; JOURNAL_STREAM is set when stderr goes to it.
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # uvicorn's per-request access lines would drown the check-ins.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
