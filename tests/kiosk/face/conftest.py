"""Fixtures for the face tests: the real photos (`face_data`, tests/conftest.py), encoded once
per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bench.face_tools.dataset import FaceSample, load_samples
from kiosk.face.matcher import FaceMatcher


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
