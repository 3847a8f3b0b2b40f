"""OpenCV camera with a grabber thread that keeps only the newest frame.

Sources: a device index (0), a V4L2 path (/dev/video0), a network stream (rtsp://, http://)
or a video file (demo and tests; optionally looped, played at its native frame rate).

Why a grabber thread: OpenCV buffers frames inside the capture (V4L2 ring buffers, FFmpeg's
RTSP queue). A consumer that reads only when it has time gets frames that are seconds old.
The grabber reads continuously and overwrites one slot, so `latest()` is always the newest.

A missing or failing camera is a status, never an exception out of the thread: the loop
reopens it with exponential backoff until stopped, so card check-in never depends on it.
Like the card readers, `run(stop)` blocks in a thread owned by the daemon; `start()`/`close()`
are a convenience that owns the thread itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from hardware.backoff import Backoff

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]  # H x W x 3, BGR as OpenCV delivers it

# A live source that fails this many reads in a row is reopened.
MAX_READ_FAILURES = 10
# OpenCV/FFmpeg timeouts for network streams, so a dead RTSP camera cannot block a read for
# FFmpeg's default 30 s (which would also delay `stop`).
STREAM_TIMEOUT_MS = 5000
FALLBACK_FPS = 25.0


class CameraState(StrEnum):
    STARTING = "starting"
    OK = "ok"  # delivering frames
    ABSENT = "absent"  # source not found / cannot be opened; retrying
    ERROR = "error"  # opened but failing to deliver frames; retrying
    STOPPED = "stopped"  # stopped, or a video file ended without loop


@dataclass(frozen=True)
class CameraStatus:
    state: CameraState
    detail: str = ""
    since: float = field(default_factory=time.time)
    fps: float = 0.0  # measured over the last frames, 0 when frames stopped coming
    width: int = 0
    height: int = 0
    frames: int = 0  # frames delivered since start (the last `seq`)
    reconnects: int = 0  # open attempts after the first


def _kind(source: int | str) -> str:
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "index"
    if source.startswith("/dev/"):
        return "device"
    if "://" in source:
        return "stream"
    return "file"


def describe_source(source: int | str) -> str:
    """For logs and status: hide stream credentials (rtsp://user:pass@host/...)."""
    text = str(source)
    if "://" in text and "@" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return text


class Camera:
    """One camera source, read by a grabber thread.

    `latest()` returns `(frame, seq, timestamp)`: the newest frame (read-only, shared: copy it
    before modifying), a counter that increases by one per grabbed frame (a consumer that sees
    seq jump has skipped frames, by design), and the `time.monotonic()` of its capture.
    """

    def __init__(
        self,
        source: int | str,
        *,
        loop: bool = False,
        width: int | None = None,
        height: int | None = None,
        playback_speed: float | None = 1.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        name: str = "camera",
    ) -> None:
        """`width`/`height` request a capture size from devices (the driver may refuse).
        `playback_speed` paces video files relative to their native fps; None reads them as
        fast as they decode (tests). Live sources are paced by the device itself."""
        self.source: int | str = int(source) if _kind(source) == "index" else source
        self.kind = _kind(source)
        self.loop = loop
        self.width = width
        self.height = height
        self.playback_speed = playback_speed
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.name = name
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._latest: tuple[Frame, int, float] | None = None
        self._seq = 0
        self._stamps: deque[float] = deque(maxlen=30)
        self._status = CameraStatus(CameraState.STARTING, describe_source(source))
        self._reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- consumer side -----------------------------------------------------------------------
    def latest(self) -> tuple[Frame, int, float] | None:
        """The newest frame, or None before the first frame arrived."""
        with self._lock:
            return self._latest

    def wait_newer(self, seq: int, timeout: float) -> tuple[Frame, int, float] | None:
        """Block until a frame newer than `seq` exists (or timeout): lets the face worker sleep
        instead of polling. Returns the newest frame, or None on timeout."""
        with self._new_frame:
            self._new_frame.wait_for(lambda: self._seq > seq, timeout)
            latest = self._latest
        return latest if latest is not None and latest[1] > seq else None

    def status(self) -> CameraStatus:
        with self._lock:
            status = self._status
            stamps = list(self._stamps)
        fps = 0.0
        now = time.monotonic()
        # Frames that stopped coming must not keep showing the last good fps.
        if len(stamps) >= 2 and now - stamps[-1] < 2.0:
            fps = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6)
        return CameraStatus(
            status.state,
            status.detail,
            status.since,
            round(fps, 1),
            status.width,
            status.height,
            self._seq,
            self._reconnects,
        )

    # -- thread management -------------------------------------------------------------------
    def start(self) -> Camera:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self.run, args=(self._stop,), name=f"{self.name}-grabber", daemon=True
            )
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Camera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- grabber -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Grab until `stop` is set; never raises for camera trouble."""
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        first = True
        try:
            while not stop.is_set():
                if not first:
                    self._reconnects += 1
                first = False
                try:
                    delivered, ended = self._session(stop)
                except Exception as exc:  # an OpenCV/driver surprise must not kill the thread
                    log.exception("%s: capture failed", self.name)
                    self._set_status(CameraState.ERROR, f"{type(exc).__name__}: {exc}")
                    delivered, ended = 0, False
                if ended or stop.is_set():
                    break
                if delivered:
                    backoff.reset()  # it worked for a while: retry quickly
                delay = backoff.next_delay()
                log.info("%s: reopening in %.1f s", self.name, delay)
                stop.wait(delay)
        finally:
            if self._status.state != CameraState.STOPPED:
                self._set_status(CameraState.STOPPED, "stopped")

    def _open(self) -> cv2.VideoCapture | None:
        shown = describe_source(self.source)
        if self.kind in ("file", "device") and not Path(str(self.source)).exists():
            self._set_status(CameraState.ABSENT, f"{shown} does not exist")
            return None
        if self.kind == "stream":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
            ]  # fmt: skip
            capture = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG, params)
        elif self.kind == "file":
            capture = cv2.VideoCapture(str(self.source))
        else:
            capture = cv2.VideoCapture(self.source, cv2.CAP_V4L2)
            if not capture.isOpened():
                capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            self._set_status(CameraState.ABSENT, f"cannot open {shown}")
            return None
        if self.kind in ("index", "device"):
            if self.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            # Ask the driver for the smallest queue it allows; the grabber is the real fix.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture

    def _session(self, stop: threading.Event) -> tuple[int, bool]:
        """One open..close cycle. Returns (frames delivered, source finished for good)."""
        capture = self._open()
        if capture is None:
            return 0, False
        delivered = 0
        try:
            native_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
            pace = self.kind == "file" and self.playback_speed is not None
            interval = 1.0 / (
                (native_fps if native_fps > 0 else FALLBACK_FPS) * (self.playback_speed or 1.0)
            )
            next_due = time.monotonic()
            failures = 0
            rewound = False
            while not stop.is_set():
                ok, frame = capture.read()
                if not ok or frame is None:
                    if self.kind == "file":
                        if self.loop and delivered and not rewound:
                            # Seek back instead of reopening; a file that cannot seek fails
                            # the next read too and is reopened by `run`.
                            rewound = True
                            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                            continue
                        if self.loop and rewound:
                            return delivered, False
                        if delivered:
                            self._set_status(CameraState.STOPPED, "end of video file")
                            return delivered, True
                        self._set_status(CameraState.ERROR, "video file has no readable frames")
                        return 0, False
                    failures += 1
                    if failures >= MAX_READ_FAILURES:
                        self._set_status(CameraState.ERROR, f"{failures} failed reads")
                        return delivered, False
                    continue
                failures = 0
                rewound = False
                if pace:
                    # Play files in real time: wait until this frame is due. If we fell behind
                    # (a stalled consumer machine), restart the clock instead of bursting.
                    delay = next_due - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                    next_due = max(next_due + interval, time.monotonic() - interval)
                # OpenCV's stubs type every image as a generic Mat; 8-bit BGR here (no copy).
                self._publish(np.asarray(frame, dtype=np.uint8))
                delivered += 1
            return delivered, False
        finally:
            capture.release()

    def _publish(self, frame: Frame) -> None:
        frame.flags.writeable = False  # shared with every consumer: nobody may draw on it
        now = time.monotonic()
        height, width = frame.shape[:2]
        with self._new_frame:
            self._seq += 1
            self._latest = (frame, self._seq, now)
            self._stamps.append(now)
            status = self._status
            if status.state != CameraState.OK or (status.width, status.height) != (width, height):
                self._status = CameraStatus(
                    CameraState.OK, describe_source(self.source), width=width, height=height
                )
                log.info("%s: ok, %dx%d", self.name, width, height)
            self._new_frame.notify_all()

    def _set_status(self, state: CameraState, detail: str) -> None:
        with self._lock:
            previous = self._status
            if previous.state == state and previous.detail == detail:
                return  # keep `since` of a condition that persists across retries
            self._status = CameraStatus(state, detail, width=previous.width, height=previous.height)
        level = logging.INFO if state in (CameraState.OK, CameraState.STOPPED) else logging.WARNING
        log.log(level, "%s: %s (%s)", self.name, state, detail)
