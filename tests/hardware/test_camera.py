"""Camera grabber on the real clip (short_hamilton_clip.mp4 of the shared face data) and on absent
sources. The clip: 640x360, 29.97 fps, 275 frames."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hardware.camera import Camera, CameraState, describe_source
from tests.support.wait import wait_until

CLIP_FRAMES = 275


@pytest.fixture
def clip(face_data: Path) -> Path:
    path = face_data / "short_hamilton_clip.mp4"
    if not path.exists():
        pytest.skip(f"short_hamilton_clip.mp4 not found in {face_data}")
    return path


def test_file_plays_and_delivers_fresh_frames(clip: Path) -> None:
    with Camera(str(clip)) as camera:
        # Frames keep coming: each newer than the last, stamped when decoded.
        first = wait_until(camera.latest, "the first frame")
        _, seq, stamp = first
        newer = wait_until(lambda: camera.wait_newer(seq, timeout=1.0), "a newer frame")
        frame, newer_seq, newer_stamp = newer
        wait_until(lambda: camera.status().frames >= seq + 10, "ten more frames")
        status = camera.status()
        assert newer_seq > seq and stamp <= newer_stamp <= time.monotonic()
    assert status.state == CameraState.OK
    assert (status.width, status.height) == (640, 360)
    assert frame.shape == (360, 640, 3)
    assert status.fps > 0
    # Paced at the file's frame rate: unpaced decoding would be STOPPED at the end (see below).
    assert status.frames < CLIP_FRAMES


def test_latest_is_the_newest_frame_without_queueing(clip: Path) -> None:
    with Camera(str(clip)) as camera:
        _, first, _ = wait_until(camera.latest, "the first frame")
        # A slow consumer: frames go on being decoded while nobody reads them.
        wait_until(lambda: camera.status().frames >= first + 5, "five frames decoded unread")
        frame, later, _ = camera.latest()  # type: ignore[misc]
        # It skipped ahead to the newest frame instead of handing out the next one.
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
        thread = camera._thread
        camera.close()
    assert thread is not None and not thread.is_alive()  # close() stops the retry loop
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
