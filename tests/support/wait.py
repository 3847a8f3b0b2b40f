"""Polling for a condition: the one way the tests wait (never a fixed sleep)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _describe(predicate: Callable[[], object]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


def wait_until(
    predicate: Callable[[], T], what: str | None = None, timeout: float = 10.0, step: float = 0.02
) -> T:
    """Poll `predicate` until it returns something truthy and return that value.

    The timeout bounds the wait; it is never an assertion about speed. On timeout the test
    fails with an AssertionError naming `what` (or the predicate's source line).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"gave up after {timeout:g} s waiting for {what or _describe(predicate)}"
            )
        time.sleep(step)
