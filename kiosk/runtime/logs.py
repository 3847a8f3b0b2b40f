"""Logging set-up: plain lines for journald under systemd, timestamps on a terminal."""

from __future__ import annotations

import logging
import os
import sys

from kiosk.config import LoggingConfig

# syslog priorities (sd-daemon.h): journald reads a leading "<N>" as the line's priority, so
# `journalctl -p warning` shows the warnings and errors, not every line at "info".
SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """Prefixes each record with its syslog priority for journald's stream parser."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{super().format(record)}"


class CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the moment of writing, not the one at set-up: a
    process that runs the CLI more than once (tests, an embedding shell) swaps stderr, and a
    handler holding the old, closed stream turns every later log line into a logging error."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(cfg: LoggingConfig) -> None:
    # journald stamps each line itself; JOURNAL_STREAM is set when stderr goes to it.
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=cfg.level, format=fmt, handlers=[CurrentStderr()], force=True)
    if under_journald:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JournalFormatter(fmt))
    # uvicorn's per-request access lines would drown the check-ins.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for name, module_level in cfg.levels.items():
        logging.getLogger(name).setLevel(module_level)
