"""Camera grabber on the real clip (../shared/faces/short_hamilton_clip.mp4) and on absent
sources. The clip: 640x360, 29.97 fps, 275 frames."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hardware.camera import Camera, CameraState, describe_source

CLIP_FRAMES = 275


def _clip() -> Path:
    candidates = [os.environ.get("KIOSK_FACE_DATA", "")]
    candidates.append(str(Path(__file__).resolve().parents[2].parent / "shared" / "faces"))
    for folder in candidates:
        if folder and (Path(folder) / "short_hamilton_clip.mp4").exists():
            return Path(folder) / "short_hamilton_clip.mp4"
    pytest.skip("short_hamilton_clip.mp4 not found in ../shared/faces or $KIOSK_FACE_DATA")


@pytest.fixture
def clip() -> Path:
    return _clip()


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_file_plays_at_native_fps_and_reports_status(clip: Path) -> None:
    with Camera(str(clip)) as camera:
        assert wait_until(lambda: camera.latest() is not None)
        time.sleep(1.0)
        status = camera.status()
        frame, seq, stamp = camera.latest()  # type: ignore[misc]
    # ~30 frames in ~1 s. Unpaced decoding would have reached the end (275) long before.
    assert 15 <= seq <= 60
    assert status.state == CameraState.OK
    assert (status.width, status.height) == (640, 360)
    assert frame.shape == (360, 640, 3)
    assert 20 <= status.fps <= 40
    assert stamp <= time.monotonic()


def test_latest_is_the_newest_frame_without_queueing(clip: Path) -> None:
    with Camera(str(clip)) as camera:
        assert wait_until(lambda: camera.latest() is not None)
        _, first, _ = camera.latest()  # type: ignore[misc]
        time.sleep(0.5)  # a slow consumer
        frame, later, _ = camera.latest()  # type: ignore[misc]
        # It skipped ahead to the newest frame (~15 later) instead of handing out the next one.
        assert later - first >= 5
        newer = camera.wait_newer(later, timeout=2.0)
        assert newer is not None
        assert newer[1] > later
        assert not frame.flags.writeable  # shared between consumers: read-only


def test_file_without_loop_ends_as_stopped_keeping_the_last_frame(clip: Path) -> None:
    with Camera(str(clip), playback_speed=None) as camera:
        assert wait_until(lambda: camera.status().state == CameraState.STOPPED)
        status = camera.status()
        latest = camera.latest()
    assert status.detail == "end of video file"
    assert latest is not None
    assert latest[1] == CLIP_FRAMES == status.frames


def test_file_with_loop_keeps_playing(clip: Path) -> None:
    with Camera(str(clip), loop=True, playback_speed=None) as camera:
        assert wait_until(lambda: camera.status().frames > CLIP_FRAMES + 20, timeout=30)
        assert camera.status().state == CameraState.OK


def test_missing_file_is_absent_and_retried_not_a_crash() -> None:
    camera = Camera("/nonexistent/clip.mp4", backoff_initial_s=0.02, backoff_max_s=0.05)
    camera.start()
    try:
        assert wait_until(lambda: camera.status().reconnects >= 3, timeout=5)
        status = camera.status()
        assert status.state == CameraState.ABSENT
        assert "does not exist" in status.detail
        assert camera.latest() is None
        assert camera._thread is not None and camera._thread.is_alive()
    finally:
        t0 = time.monotonic()
        camera.close()
    assert time.monotonic() - t0 < 2.0
    assert camera.status().state == CameraState.STOPPED


def test_missing_device_is_absent() -> None:
    camera = Camera("/dev/video97", backoff_initial_s=0.05)
    with camera:
        assert wait_until(lambda: camera.status().state == CameraState.ABSENT, timeout=5)


def test_stream_credentials_are_hidden() -> None:
    assert describe_source("rtsp://admin:secret@10.0.0.5:554/h264") == (
        "rtsp://***@10.0.0.5:554/h264"
    )
    assert describe_source(0) == "0"
