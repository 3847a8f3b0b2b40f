"""Log lines go to the stderr of the moment: a process that swaps stderr (a test runner, a shell
that runs the CLI twice) never gets "I/O operation on closed file" for its later lines."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from kiosk.config import LoggingConfig
from kiosk.runtime.logs import setup_logging


def test_a_swapped_stderr_gets_the_later_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging(LoggingConfig())
    logging.getLogger("kiosk.test").warning("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("kiosk.test").warning("two")
    assert second.getvalue().rstrip().endswith("WARNING kiosk.test: two")
    assert "Logging error" not in second.getvalue()
