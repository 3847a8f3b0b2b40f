"""Where things are: the repository and the shared face photographs."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The face photographs and the camera clip are not in the repository: they sit in the shared
# folder beside it (../shared/faces), or wherever $KIOSK_FACE_DATA points.
FACE_DATA_ENV = "KIOSK_FACE_DATA"
FACE_DATA_DEFAULT = REPO.parent / "shared" / "faces"
FACE_DATA_MISSING = (
    f"face photos not found: they come from ../shared/faces beside the repository "
    f"({FACE_DATA_DEFAULT}) or ${FACE_DATA_ENV}"
)


def face_data_dir() -> Path | None:
    """The face photo folder (with train/), or None where it is absent.

    When $KIOSK_FACE_DATA is set it is the only place looked at, so pointing it at an empty
    folder simulates a clone without the photos.
    """
    explicit = os.environ.get(FACE_DATA_ENV)
    candidate = Path(explicit) if explicit else FACE_DATA_DEFAULT
    return candidate if (candidate / "train").is_dir() else None


def face_data_or_skip() -> Path:
    import pytest

    root = face_data_dir()
    if root is None:
        pytest.skip(FACE_DATA_MISSING)
    return root


# Where every missing-photos skip is reported (tests/conftest.py folds them into one line).
SKIP_LINE = face_data_or_skip.__code__.co_firstlineno + 5
