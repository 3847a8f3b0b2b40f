"""Fixtures for the face tests: the real photos in ../shared/faces, encoded once per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bench.face_tools.dataset import ENV_VAR, FaceSample, find_face_data, load_samples
from kiosk.face.matcher import FaceMatcher


@pytest.fixture(scope="session")
def face_data() -> Path:
    root = find_face_data()
    if root is None:
        pytest.skip(
            f"face photos not found: expected ../shared/faces beside the repository or ${ENV_VAR}"
        )
    return root


@pytest.fixture(scope="session")
def samples(face_data: Path) -> list[FaceSample]:
    """Every face of the data set, detected and encoded once (dlib is slow on 2 cores)."""
    with warnings.catch_warnings():
        # face_recognition_models still imports pkg_resources; not our concern here.
        warnings.simplefilter("ignore", UserWarning)
        return load_samples(face_data)


@pytest.fixture(scope="session")
def enrolled(samples: list[FaceSample]) -> FaceMatcher:
    """The roster of train/ at the measured default threshold and margin."""
    matcher = FaceMatcher()
    train = [s for s in samples if s.role == "train"]
    matcher.set_roster((s.label, s.encoding) for s in train)
    return matcher
