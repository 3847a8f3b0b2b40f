"""Helpers for the attack tests (tests/security): the caregivers' PINs the fixtures enrol, and a
platform link the test can cut, with a monotonic clock to step over a backoff without sleeping."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from sync.client import PlatformClient
from sync.scheduler import SyncRunner

PIN = "739146"  # caregiver C001's PIN in tests/security (the `book` fixture)
WRONG_PIN = "864213"


class SwitchedLink(TestClient):
    """The platform in-process; `down = True` cuts the link (connection refused)."""

    down = False

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        if self.down:
            raise httpx.ConnectError("link cut by the test", request=request)
        return super().send(request, **kwargs)


class FakeTime:
    """A monotonic clock for the backoff gate: tests step over a backoff without sleeping."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Linked:
    runner: SyncRunner
    client: PlatformClient
    link: SwitchedLink
    time: FakeTime
    device_id: str
    reconcile_calls: list[tuple[dt.date, dt.date]]
