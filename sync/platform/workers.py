"""The platform on several processes: `serve --workers N` (issue 14, point 3).

One Python process uses one core (the GIL), and the deferred signature verifier, when it runs
in that process, takes the GIL from the requests. With `--workers N` (N > 1):

- the parent prepares the database once (schema upgrade, tables, the verifier's index, the
  bootstrap administrator), then runs uvicorn with N worker processes, each building the app
  from `worker_app()` with its own connection pool and no background threads;
- one more process runs the background loops (the completeness sweep and the deferred
  verifier), so requests never wait behind Ed25519 checks.

What keeps several writers correct is in the database, not in the process: a batch holds its
device row `FOR UPDATE` for its whole transaction (batches of one kiosk are applied one after
the other, whichever worker got them; the second sees the first's rows), `UNIQUE (device_id,
seq)` refuses a second copy of a seq, the claims' partial unique index refuses a second claim
of an elder's slot (the loser's retry sees the winner's), and the verifier takes its rows with
`FOR UPDATE SKIP LOCKED`. Tested by tests/sync/test_platform_workers.py.

The workers get their settings from the environment (never argv, like every secret path): the
database URL, the platform key's file and the limits as JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from sync.platform.state import Limits, now_utc

log = logging.getLogger(__name__)
ENV_DB = "HAOLINJU_PLATFORM_DB"
ENV_KEY = "HAOLINJU_PLATFORM_KEY_FILE"
ENV_LIMITS = "HAOLINJU_PLATFORM_LIMITS"
ENV_LOG_LEVEL = "HAOLINJU_PLATFORM_LOG_LEVEL"
BACKGROUND_NICE = 19  # the background process's niceness: the lowest (requests run at 0)


def limits_to_json(limits: Limits) -> str:
    return json.dumps(dataclasses.asdict(limits), default=_encode)


def _encode(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return {"seconds": value.total_seconds()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    raise TypeError(f"cannot encode {value!r}")


def limits_from_json(text: str) -> Limits:
    raw = json.loads(text)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, dict) and "seconds" in value:
            values[name] = dt.timedelta(seconds=value["seconds"])
        elif isinstance(value, dict) and "date" in value:
            values[name] = dt.date.fromisoformat(value["date"])
        else:
            values[name] = value
    return Limits(**values)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory): requests only."""
    from sync.platform.app import create_platform_app, freeze_startup_objects
    from sync.platform.keys import load_or_create_platform_key

    logging.basicConfig(level=os.environ.get(ENV_LOG_LEVEL, "WARNING"))
    limits = dataclasses.replace(
        limits_from_json(os.environ[ENV_LIMITS]), verify_interval_s=0, signature_interval_s=0
    )
    key = load_or_create_platform_key(Path(os.environ[ENV_KEY]))
    app = create_platform_app(os.environ[ENV_DB], key, None, limits=limits, prepare=False)
    freeze_startup_objects()
    return app


def background(database_url: str, limits_json: str, log_level: str) -> None:
    """The background process: completeness sweep and deferred verifier, until SIGTERM."""
    from sync.platform import signature_check
    from sync.platform.app import make_platform_engine
    from sync.platform.completeness import sweep

    logging.basicConfig(level=log_level)
    # Background work yields the cores to requests: at a lunch peak Ed25519 (~143 µs a record)
    # would otherwise take a core from the kiosks' uploads; it catches up when they are done,
    # and it has every idle cycle meanwhile (docs/scale.md).
    os.nice(BACKGROUND_NICE)
    limits = limits_from_json(limits_json)
    engine = make_platform_engine(database_url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = []
    if limits.signatures == "deferred" and limits.signature_interval_s > 0:
        threads.append(
            threading.Thread(
                target=signature_check.run_verifier,
                args=(sessions, now_utc, limits.signature_interval_s, stop),
                name="signature-verifier",
            )
        )

    def sweeper() -> None:
        while not stop.wait(limits.verify_interval_s):
            try:
                sweep(sessions, now_utc(), limits)
            except Exception:  # logged and tried again next period
                log.exception("completeness sweep failed")

    if limits.verify_interval_s > 0:
        threads.append(threading.Thread(target=sweeper, name="completeness"))
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(timeout=10)
    engine.dispose()


def serve_workers(
    database_url: str, key_file: Path, limits: Limits, host: str, port: int, workers: int,
    log_level: str = "WARNING",
) -> None:  # fmt: skip
    """Run N request workers and the background process until interrupted."""
    import uvicorn

    limits_json = limits_to_json(limits)
    os.environ.update(
        {ENV_DB: database_url, ENV_KEY: str(key_file), ENV_LIMITS: limits_json,
         ENV_LOG_LEVEL: log_level}
    )  # fmt: skip
    context = multiprocessing.get_context("spawn")
    helper = context.Process(
        target=background, args=(database_url, limits_json, log_level), name="platform-bg",
        daemon=True,
    )  # fmt: skip
    helper.start()
    try:
        uvicorn.run(
            "sync.platform.workers:worker_app", factory=True, host=host, port=port,
            workers=workers, log_config=None, access_log=False,
        )  # fmt: skip
    finally:
        helper.terminate()
        helper.join(timeout=15)
