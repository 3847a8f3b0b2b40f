"""Logging set-up: plain lines for journald under systemd, timestamps on a terminal."""

from __future__ import annotations

import logging
import os
import sys

from kiosk.config import LoggingConfig


def setup_logging(cfg: LoggingConfig) -> None:
    # journald stamps each line itself; JOURNAL_STREAM is set when stderr goes to it.
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=cfg.level, format=fmt, stream=sys.stderr, force=True)
    # uvicorn's per-request access lines would drown the check-ins.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for name, module_level in cfg.levels.items():
        logging.getLogger(name).setLevel(module_level)
