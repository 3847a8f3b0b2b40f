"""Photo-attack videos: one still photo moved in front of a camera, written as a video file.

The kiosk reads a video file exactly as it reads a camera (hardware.camera), so these files
test the whole face path against the cheapest fraud: a photo of an enrolled elder on paper or
a phone, held to the camera and moved about. Each frame is the photo warped by one planar
transform (translation, in-plane rotation, scale and a perspective tilt of the sheet about
its vertical and horizontal axes), composited on a textured background, with optional screen
moiré (a beat pattern that drifts), glare (a bright blob sliding over the sheet) and sensor
noise. Motions are slow sums of sines, as a hand moves.

`python -m bench.face_tools.attack_video PHOTO OUT.mp4 [--kind all] [--seconds 30]`
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

FPS = 30.0  # a USB camera's usual rate; the kiosk decodes what it gets and keeps the newest
FRAME_W, FRAME_H = 640, 480  # the kiosk's capture size (config.yaml camera.width/height)
FACE_PX = 130  # wanted face width in the frame at scale 1 (an elder ~0.6 m from the camera)


@dataclass(frozen=True)
class Attack:
    """How the photo moves and what the recapture adds (amplitudes; 0 = not at all)."""

    name: str
    shift_px: float = 60.0  # translation amplitude
    roll_deg: float = 12.0  # in-plane rotation amplitude
    scale: float = 0.15  # relative scale amplitude
    yaw_deg: float = 0.0  # sheet tilted about its vertical axis
    pitch_deg: float = 0.0  # and about its horizontal axis
    pitch_bias_deg: float = 0.0  # held tilted back (or forward) throughout
    moire: float = 0.0  # contrast of the moiré pattern (0-1)
    glare: float = 0.0  # peak brightness added by the glare blob (0-255)
    noise: float = 3.0  # sensor noise, grey levels (sigma)


ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack("move"),  # moved, rotated, scaled
        Attack("tilt", shift_px=30, roll_deg=5, scale=0.08, yaw_deg=35, pitch_deg=25),
        # Turned about the vertical axis while held tilted back: the projection swings the nose
        # sideways as a head turn does (the hardest flat-photo motion for the parallax check).
        Attack("turn", shift_px=20, roll_deg=3, scale=0.05, yaw_deg=35, pitch_bias_deg=-25),
        Attack(
            "screen",  # a phone: tilted, with moiré and glare
            shift_px=40,
            roll_deg=8,
            scale=0.1,
            yaw_deg=25,
            pitch_deg=15,
            moire=0.25,
            glare=120,
            noise=4,
        ),
    )
}


def face_crop(photo_bgr: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The photo cut to the largest face with a generous margin and scaled so the face is
    `FACE_PX` wide: what a photo of an elder held to a camera at ~0.6 m looks like."""
    from kiosk.face.detect import detect_faces

    rgb = np.asarray(cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    boxes = detect_faces(rgb, 1.0, 1)
    if not boxes:
        raise ValueError("no face in the photo")
    box = boxes[0]
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    half = box.width * 1.3
    h, w = photo_bgr.shape[:2]
    x0, x1 = int(max(0, cx - half)), int(min(w, cx + half))
    y0, y1 = int(max(0, cy - half * 1.25)), int(min(h, cy + half * 1.25))
    crop = photo_bgr[y0:y1, x0:x1]
    factor = FACE_PX / box.width
    return np.asarray(
        cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), dtype=np.uint8
    )


@functools.cache
def background(seed: int = 1) -> NDArray[np.uint8]:
    """A dim room: a vertical light gradient, a door frame, blurred clutter."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, FRAME_H, dtype=np.float32)[:, None, None]
    base = 70 + 60 * (1 - y) + np.zeros((FRAME_H, FRAME_W, 3), np.float32)
    base[:, 40:60] -= 35  # a door frame
    base[:, 560:600] += 25
    clutter = rng.normal(0, 18, (FRAME_H // 8, FRAME_W // 8, 3)).astype(np.float32)
    base += cv2.resize(clutter, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 255).astype(np.uint8)


NOISE_FRAMES = 16  # sensor noise is drawn once and cycled: generating it is the slow part


@functools.cache
def _noise(seed: int, n: int, sigma: float) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Sensor noise as the parts to add and to subtract (saturating uint8 arithmetic)."""
    rng = np.random.default_rng(seed * 100003 + n)
    noise = np.rint(sigma * rng.standard_normal((FRAME_H, FRAME_W, 3))).clip(-255, 255)
    return noise.clip(0, None).astype(np.uint8), (-noise).clip(0, None).astype(np.uint8)


@functools.cache
def _grid(h: int, w: int) -> NDArray[np.float32]:
    return np.mgrid[0:h, 0:w].astype(np.float32)


def _homography(attack: Attack, t: float, photo_w: int, photo_h: int) -> NDArray[np.float64]:
    """The planar transform of the photo at time t: a sheet rotated in 3-D about its centre,
    projected by a pinhole camera (focal 600 px), then rolled, scaled and shifted."""
    yaw = math.radians(attack.yaw_deg * math.sin(2 * math.pi * t / 7.0))
    pitch = math.radians(
        attack.pitch_bias_deg + attack.pitch_deg * math.sin(2 * math.pi * t / 5.3 + 1.0)
    )
    roll = math.radians(attack.roll_deg * math.sin(2 * math.pi * t / 6.1 + 0.5))
    scale = 1.0 + attack.scale * math.sin(2 * math.pi * t / 8.3 + 2.0)
    dx = attack.shift_px * math.sin(2 * math.pi * t / 9.7)
    dy = 0.6 * attack.shift_px * math.sin(2 * math.pi * t / 6.7 + 0.3)
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    rot = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array(
        [[1, 0, 0], [0, cp, -sp], [0, sp, cp]]
    )
    focal, depth = 600.0, 600.0
    corners = np.array([[0, 0], [photo_w, 0], [photo_w, photo_h], [0, photo_h]], dtype=np.float64)
    centred = np.c_[corners - [photo_w / 2, photo_h / 2], np.zeros(4)]
    cam = centred @ rot.T + [0, 0, depth]
    projected = focal * cam[:, :2] / cam[:, 2:3]
    c, s = math.cos(roll) * scale, math.sin(roll) * scale
    placed = projected @ np.array([[c, s], [-s, c]]) + [FRAME_W / 2 + dx, FRAME_H / 2 + dy]
    return np.asarray(
        cv2.getPerspectiveTransform(corners.astype(np.float32), placed.astype(np.float32)),
        dtype=np.float64,
    )


def render(
    crop: NDArray[np.uint8], attack: Attack, frame_no: int, seed: int = 1
) -> NDArray[np.uint8]:
    """One frame of the attack video (BGR, FRAME_W x FRAME_H) from `face_crop`'s output."""
    t = frame_no / FPS
    h, w = crop.shape[:2]
    hom = _homography(attack, t, w, h)
    sheet = crop.astype(np.float32)
    if attack.moire > 0:  # screen pixels beating with the camera's grid: drifts and bends
        yy, xx = _grid(h, w)
        f = 0.9 + 0.05 * math.sin(t / 3.0)
        phase = f * xx + (0.35 + 0.05 * math.cos(t / 2.0)) * yy + 0.002 * xx * yy
        sheet *= (1 + attack.moire * np.sin(phase))[:, :, None]
    if attack.glare > 0:  # a lamp reflected on the sheet, sliding as it tilts
        yy, xx = _grid(h, w)
        gx = w * (0.5 + 0.35 * math.sin(2 * math.pi * t / 4.1))
        gy = h * (0.35 + 0.2 * math.cos(2 * math.pi * t / 5.7))
        blob = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.18 * w) ** 2))
        sheet += attack.glare * blob[:, :, None]
    # Drawn straight onto the background: pixels outside the sheet are left as they are.
    frame = background(seed).copy()
    cv2.warpPerspective(
        np.clip(sheet, 0, 255).astype(np.uint8),
        hom,
        (FRAME_W, FRAME_H),
        dst=frame,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_TRANSPARENT,
    )
    up, down = _noise(seed, frame_no % NOISE_FRAMES, attack.noise)
    return np.asarray(cv2.subtract(cv2.add(frame, up), down), dtype=np.uint8)


def write_attack_video(
    photo: Path, out: Path, attack: Attack, seconds: float = 30.0, seed: int = 1
) -> Path:
    """Write the attack video (MPEG-4 part 2, what OpenCV writes without extra codecs)."""
    read = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if read is None:
        raise ValueError(f"cannot read {photo}")
    crop = face_crop(np.asarray(read, dtype=np.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out}")
    try:
        for n in range(int(seconds * FPS)):
            writer.write(render(crop, attack, n, seed))
    finally:
        writer.release()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("out", type=Path, help="file, or folder with --kind all")
    parser.add_argument("--kind", default="all", choices=[*ATTACKS, "all"])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kinds = list(ATTACKS) if args.kind == "all" else [args.kind]
    for kind in kinds:
        out = args.out / f"{kind}.mp4" if args.kind == "all" else args.out
        write_attack_video(args.photo, out, ATTACKS[kind], args.seconds)
        log.info("wrote %s", out)


if __name__ == "__main__":
    main()
