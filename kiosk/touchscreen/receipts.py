"""Photos of purchase receipts (收据/小票), kept on the terminal beside the books.

A photo is stored once under data/receipts/<sha256>.jpg (0600, written to a temporary file and
renamed, so a crash never leaves half a photo) and the expense entry carries its SHA-256: the
entry is signed, so a photo swapped later no longer matches its entry. Photos are never
uploaded; the county can ask for them at an inspection. The size is capped before anything is
read (kiosk/api/guards.py) and again here, and only a decodable JPEG or PNG is kept.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import cv2
import numpy as np

MAX_BYTES = 3 * 1024 * 1024  # a phone photo of a receipt is 0.3-2 MB
SHA = re.compile(r"[0-9a-f]{64}")


class ReceiptError(ValueError):
    """A photo that cannot be kept; the message is for the caregiver (Chinese)."""


def receipts_dir(data_dir: Path) -> Path:
    return data_dir / "receipts"


def receipt_path(data_dir: Path, sha: str) -> Path | None:
    if not SHA.fullmatch(sha):
        return None
    path = receipts_dir(data_dir) / f"{sha}.jpg"
    return path if path.is_file() else None


def store_receipt(data_dir: Path, data: bytes) -> str:
    """Keep the photo; returns its SHA-256 (hex)."""
    if len(data) > MAX_BYTES:
        raise ReceiptError(f"照片太大（最多 {MAX_BYTES // (1024 * 1024)} MB）")
    if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
        raise ReceiptError("只能保存照片（JPEG 或 PNG）")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ReceiptError("照片损坏，无法打开")
    sha = hashlib.sha256(data).hexdigest()
    folder = receipts_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = folder / f"{sha}.jpg"
    if final.exists():
        return sha
    tmp = folder / f".{sha}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(final)
    return sha


def snapshot_jpeg(frame: np.ndarray) -> bytes:
    """A camera frame as the JPEG kept for a receipt."""
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ReceiptError("拍照失败，请再试一次")
    return bytes(jpeg.tobytes())
