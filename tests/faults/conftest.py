"""Figures of the fault, load and security suites, collected for the README and docs/faults.md.

Each test adds its counts to the session's `figures`; at the end they are printed and written as
JSON to $KIOSK_FAULTS_REPORT (`make soak` points it at tests/faults/last-soak.json).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import SOAK

_FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, Any]]:
    started = time.time()
    yield _FIGURES
    _FIGURES["mode"] = "soak" if SOAK else "ci"
    _FIGURES["wall_s"] = round(time.time() - started, 1)
    _FIGURES["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    target = os.environ.get("KIOSK_FAULTS_REPORT")
    if target:
        Path(target).write_text(json.dumps(_FIGURES, indent=2, ensure_ascii=False) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("faults, load and security figures")
        for key, value in sorted(_FIGURES.items()):
            terminalreporter.write_line(f"{key}: {value}")
