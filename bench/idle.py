"""CPU with the camera on: the real Camera (video file, paced at its fps, looped) and the real
FaceWorker (motion gate -> pipeline -> matcher) in a child process, its CPU time
(time.process_time) over a window after a warm-up. Scenes: static (one frame with sensor
noise) and moving (the face-data clip, or a moving shape without face data).

Baseline: the naive always-detect loop on the same camera: every new frame through full-frame
HOG (upsample 1), face_encodings of every face and compare_faces, no motion gate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import FACE_DATA, REPO, Budget, Context, Row

FPS = 30
BUDGET = Budget("<=", 5.0, "% core")
BASELINE_LABEL = (
    "always-detect loop on the same camera: every frame full-frame HOG (upsample 1) + "
    "face_encodings + compare_faces, no motion gate"
)


def _writer(path: Path) -> Any:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 480))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write an MJPG video here")
    return writer


def make_videos(folder: Path) -> tuple[Path, Path, str]:
    """(static.avi, moving.avi, what the moving scene is)."""
    import cv2

    from bench.face import fit

    rng = np.random.default_rng(0)
    photo = FACE_DATA / "test" / "obama1.jpg"
    image = cv2.imread(str(photo)) if photo.exists() else None
    if image is None:  # a plain room: gradient + a few shapes
        image = np.tile(np.linspace(60, 180, 640, dtype=np.uint8), (480, 1))
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        cv2.rectangle(image, (100, 100), (250, 300), (40, 90, 140), -1)
    background = fit(image)
    static = folder / "static.avi"
    w = _writer(static)
    for _ in range(FPS * 3):  # sensor noise, sigma ~2 grey levels
        noise = rng.normal(0, 2, background.shape)
        w.write(np.clip(background + noise, 0, 255).astype(np.uint8))
    w.release()

    moving = folder / "moving.avi"
    clip = FACE_DATA / "short_hamilton_clip.mp4"
    w = _writer(moving)
    if clip.exists():
        cap = cv2.VideoCapture(str(clip))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            w.write(fit(frame))
        cap.release()
        what = "the face-data clip (a man talking, fitted to 640x480)"
    else:
        for k in range(FPS * 4):
            frame = background.copy()
            x = 50 + (k * 8) % 500
            cv2.circle(frame, (x, 240), 60, (200, 180, 160), -1)
            w.write(frame)
        what = "a moving disc over the static scene (no face data)"
    w.release()
    return static, moving, what


def _child_run(mode: str, video: str, warmup: float, seconds: float) -> dict[str, Any]:  # noqa: PLR0915
    """In the child: start camera + worker (or the naive loop), measure CPU over `seconds`."""
    import threading
    import time
    import warnings

    warnings.simplefilter("ignore")
    # Models are loaded before the window, in every mode: the naive loop loads them the way
    # face_recognition does (all five at import), the kiosk the ones it uses (kiosk.face.weights).
    if mode == "naive":
        import face_recognition
    else:
        from kiosk.face import weights as models

        models.hog_detector(), models.shape_predictor_5(), models.face_encoder()

    from bench.common import kiosk_config, vm_rss_mb
    from hardware.camera import Camera

    camera = Camera(video, loop=True, playback_speed=1.0)
    stop = threading.Event()
    grabber = threading.Thread(target=camera.run, args=(stop,), daemon=True)
    grabber.start()
    counters = {"seen": 0, "analyzed": 0}
    worker: Any = None
    if mode == "camera":
        pass  # the grabber alone: decoding and pacing
    elif mode == "naive":
        known = [np.random.default_rng(0).normal(0, 0.09, 128) for _ in range(1000)]

        def naive() -> None:
            seq = 0
            while not stop.is_set():
                got = camera.wait_newer(seq, 0.5)
                if got is None:
                    continue
                frame, seq, _ = got
                rgb = frame[:, :, ::-1].copy()
                locations = face_recognition.face_locations(rgb)
                for enc in face_recognition.face_encodings(rgb, locations):
                    face_recognition.compare_faces(known, enc)
                counters["seen"] += 1
                counters["analyzed"] += 1

        threading.Thread(target=naive, daemon=True).start()
    else:
        import tempfile

        from kiosk.checkin.rules import CheckinService
        from kiosk.face.worker import FaceWorker
        from kiosk.ops.storage import open_store

        config = kiosk_config()
        store = open_store(Path(tempfile.mkdtemp(prefix="bench-idle-")))
        checkin = CheckinService(config, store, None)
        worker = FaceWorker(config.face, camera, checkin, templates=None)
        rng = np.random.default_rng(0)
        worker.matcher.set_templates(
            [f"e{i}" for i in range(1000)], rng.normal(0, 0.09, (1000, 128))
        )
        worker.start(stop)
    time.sleep(warmup)
    seen0 = worker.frames_seen if worker else counters["seen"]
    analyzed0 = worker.frames_analyzed if worker else counters["analyzed"]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    seen = (worker.frames_seen if worker else counters["seen"]) - seen0
    analyzed = (worker.frames_analyzed if worker else counters["analyzed"]) - analyzed0
    status = camera.status()
    result = {
        "mode": mode,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_pct": 100 * cpu / wall,
        "frames_seen": seen,
        "frames_analyzed": analyzed,
        "camera_fps": status.fps,
        "rss_mb": vm_rss_mb(__import__("os").getpid()),
    }
    stop.set()
    grabber.join(5)
    if worker is not None:
        worker.join(5)
    return result


def _measure(mode: str, video: Path, warmup: float, seconds: float) -> dict[str, Any]:
    from bench.common import child_env

    done = subprocess.run(
        [sys.executable, "-m", "bench.idle", mode, str(video), str(warmup), str(seconds)],
        cwd=REPO, env=child_env(), capture_output=True, text=True,
        timeout=seconds + warmup + 120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"idle child {mode} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> list[Row]:
    static, moving, what = make_videos(ctx.workdir)
    window = ctx.size(2.0, 60.0)
    short = ctx.size(1.5, 30.0)  # the other scenes are steady: a shorter window does
    # Longer than the motion gate's hold (3 s): the first frame always opens the gate.
    warmup = ctx.size(3.5, 5.0)
    runs = {
        "static": _measure("worker", static, warmup, window),
        "camera only": _measure("camera", static, warmup, short),
        "static-naive": _measure("naive", static, warmup, short),
        "moving": _measure("worker", moving, warmup, short),
        "moving-naive": _measure("naive", moving, warmup, short),
    }
    ctx.extra["runs"] = runs
    common: dict[str, Any] = {"bench": "idle", "unit": "% core", "baseline_label": BASELINE_LABEL}
    rows = [
        Row(metric="static scene, camera on", ours=runs["static"]["cpu_pct"],
            baseline=runs["static-naive"]["cpu_pct"], budget=BUDGET, **common),
        Row(metric="static: of which camera grabber alone", ours=runs["camera only"]["cpu_pct"],
            **common),
        Row(metric="moving scene, camera on", ours=runs["moving"]["cpu_pct"],
            baseline=runs["moving-naive"]["cpu_pct"], **common),
        Row(bench="idle", metric="RSS, camera + face worker (dlib loaded)",
            ours=runs["moving"]["rss_mb"], baseline=runs["moving-naive"]["rss_mb"], unit="MB",
            budget=Budget("<=", 300.0, "MB"), baseline_label=BASELINE_LABEL),
    ]  # fmt: skip
    ctx.note(
        f"Child processes, CPU = time.process_time over the window / wall time (100 % = one "
        f"core). Camera: MJPG 640x480 video file at {FPS} fps, paced, looped (decoding is "
        f"counted). Window {window:.0f} s (static, ours) / {short:.0f} s (others) after "
        f"{warmup:.0f} s warm-up. Moving scene: {what}. Frames seen/analyzed: "
        + ", ".join(f"{k} {v['frames_seen']}/{v['frames_analyzed']}" for k, v in runs.items())
        + "."
    )
    return rows


if __name__ == "__main__":
    mode, video, warm, secs = sys.argv[1:5]
    print(json.dumps(_child_run(mode, video, float(warm), float(secs))), flush=True)  # noqa: T201
    # Threads inside OpenCV/dlib may still run: leave without finalising the interpreter.
    __import__("os")._exit(0)
