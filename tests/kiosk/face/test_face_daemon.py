"""End to end: `kiosk run` as a process with the Hamilton clip as its camera.

With lin-manuel-miranda.png enrolled, the running kiosk records exactly one face check-in for
him (the clip shows him for ~9 s: every frame after the first match is the same appearance)
and none for anybody else; with him not enrolled (other elders are), none at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bench.face_tools.dataset import CLIP
from kiosk.face.enrol import Enrolled, Enroller, load_image
from kiosk.face.templates import FaceKey, TemplateStore
from kiosk.ops.storage import open_store
from models.db import Store
from models.tables import MealRecord
from tests.support.daemon import start_daemon
from tests.support.roster import elder_row
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

LIN, OBAMA, BIDEN = "E0001", "E0002", "E0003"


@pytest.fixture(scope="module")
def faces(face_data: Path) -> Path:
    if not (face_data / CLIP).exists():
        pytest.skip(f"{CLIP} not found in {face_data}")
    return face_data


def start_kiosk(tmp_path: Path, faces: Path, enrol: dict[str, str]) -> tuple[Any, str, Path]:
    """A data dir with three elders, the given photos enrolled, and a running daemon."""

    def enrol_photos(store: Store, data: Path) -> None:
        enroller = Enroller(TemplateStore(store, FaceKey.load(data)), 0.45, 0.08)
        for elder, photo in enrol.items():
            now = dt.datetime.now(dt.UTC)
            result = enroller.enrol(elder, load_image(faces / photo), "consent-test", now)
            assert isinstance(result, Enrolled), result

    roster = [elder_row(1, name="林"), elder_row(2, name="奥"), elder_row(3, name="拜")]
    camera = f'camera: {{enabled: true, source: "{faces / CLIP}", loop: false}}\n'
    proc, base = start_daemon(tmp_path, roster, extra_config=camera, prepare=enrol_photos)
    return proc, base, tmp_path / "data"


def play_clip(proc: subprocess.Popen[str], base: str) -> dict[str, Any]:
    """Wait until the clip has played to its end and the worker is done with it; the health."""

    def health() -> dict[str, Any] | None:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            body: dict[str, Any] = httpx.get(f"{base}/api/health", timeout=2).json()
            return body
        except httpx.TransportError:
            return None

    def clip_ended() -> bool:
        h = health()
        return h is not None and h["camera"]["state"] == "stopped"

    wait_until(clip_ended, "the clip to play to its end", timeout=90, step=0.3)
    # The worker may still be deciding on the last frame it took: wait until its counters
    # stop moving between two reads.
    last: dict[str, Any] = {}

    def settled() -> dict[str, Any] | None:
        h = health()
        if h is None:
            return None
        face = h["face"]
        key = (face["frames_seen"], face["frames_analyzed"], face["checkins"])
        same = last.get("key") == key
        last["key"] = key
        return h if same else None

    return wait_until(settled, "the face worker to finish the clip", timeout=30, step=0.3)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    return stderr


def records(data: Path) -> list[MealRecord]:
    store = open_store(data)
    try:
        with store.read() as session:
            return list(session.scalars(select(MealRecord)))
    finally:
        store.close()


@pytest.fixture
def kiosk_proc() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_clip_checks_in_lin_exactly_once_and_nobody_else(
    tmp_path: Path, faces: Path, kiosk_proc: list[subprocess.Popen[str]]
) -> None:
    proc, base, data = start_kiosk(
        tmp_path,
        faces,
        {
            LIN: "lin-manuel-miranda.png",
            OBAMA: "train/obama/obama.jpg",
            BIDEN: "train/biden/biden.jpg",
        },
    )
    kiosk_proc.append(proc)
    health = play_clip(proc, base)
    face = health["face"]
    assert face["state"] == "ok" and face["templates"] == 3, face
    assert health["camera"]["resolution"] == "640x360"
    assert face["frames_analyzed"] > 10, face
    stderr = stop(proc)
    rows = records(data)
    assert [(r.elder_id, r.method) for r in rows] == [(LIN, "face")], stderr
    (row,) = rows
    assert row.distance is not None and row.distance <= 0.45
    assert row.margin is not None and row.margin >= 0.08
    assert row.liveness == "parallax"  # the default: passive, licence-clean
    logging.getLogger(__name__).warning("face worker after the clip: %s", face)  # timings


def test_clip_checks_in_nobody_when_lin_is_not_enrolled(
    tmp_path: Path, faces: Path, kiosk_proc: list[subprocess.Popen[str]]
) -> None:
    proc, base, data = start_kiosk(
        tmp_path, faces, {OBAMA: "train/obama/obama.jpg", BIDEN: "train/biden/biden.jpg"}
    )
    kiosk_proc.append(proc)
    health = play_clip(proc, base)
    assert health["face"]["frames_analyzed"] > 10  # the pipeline ran; nobody matched
    stop(proc)
    assert records(data) == []
