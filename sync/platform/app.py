"""The reference county platform: a FastAPI app over SQLite or PostgreSQL.

It is the other end of sync/wire.py and the yardstick the kiosk is tested against; a vendor
building the real platform implements the same endpoints (see /docs, and docs/sync.md).
Routes live in sync/platform/routers/ by domain; who may call what is in deps.py:
devices authenticate with the bearer token issued at enrolment, terminals enrol with a one-time
code, township operators and the county administrator with their own tokens (docs/threat-model.md).
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import sessionmaker

from models.db import make_engine
from sync.platform import schema_upgrade, signature_check
from sync.platform.completeness import sweep
from sync.platform.routers import (
    admin,
    books,
    console,
    county_cards,
    device_copy,
    devices,
    health,
    heartbeat,
    reconcile,
    records,
    roster,
)
from sync.platform.state import Limits, PlatformState, now_utc
from sync.platform.tables import PlatformBase

log = logging.getLogger(__name__)

ROUTERS = (
    health.router,
    records.router,
    device_copy.router,
    reconcile.router,
    heartbeat.router,
    books.router,
    roster.router,
    county_cards.router,
    devices.router,
    admin.router,
)


def make_platform_engine(database_url: str) -> Engine:
    # One writer at a time on SQLite, decided at BEGIN; a longer busy timeout than the kiosk's
    # because a county's kiosks upload at once.
    # PostgreSQL: a fixed pool, no overflow. An overflow connection is closed when it is given
    # back to a full pool, and the next request opens a new backend (a fork, authentication,
    # cold catalog caches: milliseconds of CPU on both sides): under 200 kiosks at once that
    # churn cost more than the inserts (docs/scale.md). Eight transactions per process keep
    # two cores busy (each waits on PostgreSQL part of its time); more only add GIL and lock
    # contention. Requests beyond them wait for a connection (the pool's timeout is a 503
    # the kiosk retries).
    # No ping before each checkout (a round trip, ~90 µs of CPU a request on both sides): a
    # connection the server dropped (a restart) fails its request as a 503 the kiosk retries,
    # and SQLAlchemy then replaces every connection of the pool.
    postgres = not database_url.startswith("sqlite")
    return make_engine(
        database_url, immediate=True, pool_size=8 if postgres else 10,
        max_overflow=0 if postgres else 10, busy_timeout_ms=10_000, pre_ping=not postgres,
    )  # fmt: skip


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 with what was wrong. FastAPI's own handler echoes the raw body back and answers 500
    when that body is not UTF-8 (found by tests/faults/test_fuzz.py)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _database_busy(_request: Request, exc: Exception) -> JSONResponse:
    """A database too busy to answer in time (SQLite's single writer under a county's worth of
    kiosks) is a 503 the uploader backs off from, not a 500 it treats as a bug."""
    log.warning("database busy, answering 503: %s", getattr(exc, "orig", exc))
    return JSONResponse(
        {"detail": "busy, retry later"}, status_code=503, headers={"Retry-After": "5"}
    )


def _sweeper(state: PlatformState, stop: threading.Event) -> None:
    """The periodic completeness check: deletions on the platform make no request of their own."""
    while not stop.wait(state.limits.verify_interval_s):
        try:
            sweep(state.sessions, state.clock(), state.limits)
        except Exception:  # a failed sweep is logged and tried again next period
            log.exception("completeness sweep failed")


def freeze_startup_objects() -> None:
    """Take what start-up built (modules, SQLAlchemy's metadata and compiled statements,
    FastAPI's routes) out of the garbage collector's sight before serving. Requests allocate
    fast (a 500-record batch is 500 models and their rows): every full collection used to walk
    the whole server too, ~6 µs of CPU per record ingested (docs/scale.md). Those objects live
    as long as the process; nothing is lost."""
    gc.collect()
    gc.freeze()


def prepare_database(engine: Engine) -> None:
    """Bring the schema up to date: once per start, before any request."""
    schema_upgrade.upgrade(engine)  # columns added since an older reference platform
    PlatformBase.metadata.create_all(engine)
    signature_check.ensure_index(engine)  # the deferred verifier's queue


def create_platform_app(
    database_url: str,
    platform_key: Ed25519PrivateKey,
    admin_token: str | None = None,
    *,
    clock: Callable[[], dt.datetime] = now_utc,
    limits: Limits | None = None,
    admin_name: str = "admin",
    prepare: bool = True,
) -> FastAPI:
    """The platform app; creates its tables if missing (the reference server has no migrations).

    `admin_token` (read by the caller from a file or stdin, never argv) creates or updates the
    bootstrap county administrator `admin_name`; only its SHA-256 is stored.
    """
    engine = make_platform_engine(database_url)
    if prepare:  # False in the workers of a multi-process platform: the parent did it once
        prepare_database(engine)
    state = PlatformState(
        sessions=sessionmaker(engine, expire_on_commit=False),
        platform_key=platform_key,
        clock=clock,
        limits=limits or Limits(),
    )
    if admin_token:
        admin.ensure_admin(state, admin_name, admin_token)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = None
        if state.limits.verify_interval_s > 0:
            worker = threading.Thread(
                target=_sweeper, args=(state, stop), name="completeness", daemon=True
            )
            worker.start()
        verifier = None
        if state.limits.signatures == "deferred" and state.limits.signature_interval_s > 0:
            verifier = threading.Thread(
                target=signature_check.run_verifier,
                args=(state.sessions, state.clock, state.limits.signature_interval_s, stop),
                name="signature-verifier",
                daemon=True,
            )
            verifier.start()
        try:
            yield
        finally:
            stop.set()
            for thread in (worker, verifier):
                if thread is not None:
                    thread.join(timeout=10)

    app = FastAPI(
        title="Haolinju reference county platform",
        version="1",
        description="Receives, verifies and counts meal records; serves signed rosters.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.platform = state
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(OperationalError, _database_busy)
    # Every pooled connection held by a transaction waiting on locks: busy too, not a 500.
    app.add_exception_handler(PoolTimeoutError, _database_busy)
    for router in ROUTERS:
        app.include_router(router)
    console.install(app)  # the county console's pages at / and /console/...
    return app
