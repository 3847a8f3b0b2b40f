"""FaceMatcher on synthetic vectors: the decision rule and the arithmetic, no dlib."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kiosk.face.matcher import (
    ENCODING_DIM,
    Ambiguous,
    FaceMatcher,
    Match,
    Unknown,
)


def unit(axis: int, length: float = 1.0) -> np.ndarray:
    v = np.zeros(ENCODING_DIM, dtype=np.float32)
    v[axis] = length
    return v


def test_empty_roster_is_unknown_without_an_elder() -> None:
    result = FaceMatcher().match(unit(0))
    assert result == Unknown(None, math.inf, math.inf)


def test_single_elder_matches_with_infinite_margin() -> None:
    matcher = FaceMatcher(threshold=0.5, min_margin=0.1)
    matcher.set_roster([("a", unit(0))])
    result = matcher.match(unit(0) + unit(1, 0.3))
    assert isinstance(result, Match)
    assert result.elder_id == "a"
    assert result.distance == pytest.approx(0.3, abs=1e-5)
    assert result.margin == math.inf


def test_beyond_threshold_is_unknown_but_names_the_nearest() -> None:
    matcher = FaceMatcher(threshold=0.5, min_margin=0.0)
    matcher.set_roster([("a", unit(0)), ("b", unit(1))])
    result = matcher.match(unit(0) + unit(2, 0.6))
    assert isinstance(result, Unknown)
    assert result.elder_id == "a"
    assert result.distance == pytest.approx(0.6, abs=1e-5)


def test_other_elder_too_close_is_ambiguous() -> None:
    matcher = FaceMatcher(threshold=0.5, min_margin=0.1)
    # a at distance 0.30, b at distance 0.35 from the query: within threshold, margin 0.05.
    query = np.zeros(ENCODING_DIM, dtype=np.float32)
    matcher.set_roster([("a", unit(0, 0.30)), ("b", unit(1, 0.35))])
    result = matcher.match(query)
    assert isinstance(result, Ambiguous)
    assert (result.elder_id, result.runner_up) == ("a", "b")
    assert result.margin == pytest.approx(0.05, abs=1e-5)
    # The same geometry with a wider gap is a match.
    matcher.set_roster([("a", unit(0, 0.30)), ("b", unit(1, 0.45))])
    assert isinstance(matcher.match(query), Match)


def test_exact_tie_between_two_elders_is_ambiguous() -> None:
    matcher = FaceMatcher(threshold=0.5, min_margin=0.01)
    matcher.set_roster([("a", unit(0, 0.3)), ("b", unit(1, 0.3))])
    result = matcher.match(np.zeros(ENCODING_DIM, dtype=np.float32))
    assert isinstance(result, Ambiguous)
    assert result.margin == pytest.approx(0.0, abs=1e-6)


def test_margin_ignores_the_same_elders_other_templates() -> None:
    """Several templates of one elder close together must not make that elder ambiguous."""
    matcher = FaceMatcher(threshold=0.5, min_margin=0.2)
    query = np.zeros(ENCODING_DIM, dtype=np.float32)
    matcher.set_roster(
        [
            ("b", unit(3, 0.9)),
            ("a", unit(0, 0.30)),
            ("c", unit(4, 1.0)),
            ("a", unit(1, 0.31)),
            ("a", unit(2, 0.32)),
        ]
    )
    result = matcher.match(query)
    assert isinstance(result, Match)
    assert result.elder_id == "a"
    assert result.distance == pytest.approx(0.30, abs=1e-5)
    assert result.margin == pytest.approx(0.9 - 0.30, abs=1e-5)
    assert (matcher.template_count, matcher.elder_count) == (5, 3)


def test_best_of_several_templates_counts() -> None:
    matcher = FaceMatcher(threshold=0.5, min_margin=0.05)
    matcher.set_roster([("a", unit(0, 2.0)), ("b", unit(1, 0.6)), ("a", unit(2, 0.2))])
    result = matcher.match(np.zeros(ENCODING_DIM, dtype=np.float32))
    assert isinstance(result, Match)
    assert result.elder_id == "a"
    assert result.distance == pytest.approx(0.2, abs=1e-5)


@pytest.mark.parametrize("n_templates", [1_000, 50_000])
def test_nearest_agrees_with_brute_force(n_templates: int) -> None:
    rng = np.random.default_rng(n_templates)
    templates = rng.normal(0, 0.09, size=(n_templates, ENCODING_DIM)).astype(np.float32)
    elders = [f"e{i % (n_templates // 3)}" for i in range(n_templates)]  # 3 templates each
    matcher = FaceMatcher()
    matcher.set_templates(elders, templates)
    for _ in range(5):
        # A noisy copy of a random template, so the best is well defined.
        target = int(rng.integers(n_templates))
        query = templates[target] + rng.normal(0, 0.02, ENCODING_DIM).astype(np.float32)
        dists = np.linalg.norm(templates.astype(np.float64) - query, axis=1)
        per_elder: dict[str, float] = {}
        for elder, d in zip(elders, dists, strict=True):
            per_elder[elder] = min(per_elder.get(elder, math.inf), float(d))
        ranked = sorted(per_elder.items(), key=lambda kv: kv[1])
        nearest = matcher.nearest(query)
        assert nearest.elder_id == ranked[0][0] == elders[target]
        assert nearest.distance == pytest.approx(ranked[0][1], abs=1e-3)
        assert nearest.runner_up == ranked[1][0]
        assert nearest.runner_up_distance == pytest.approx(ranked[1][1], abs=1e-3)


def test_roster_is_replaced_as_a_whole() -> None:
    matcher = FaceMatcher(threshold=0.5, min_margin=0.0)
    matcher.set_roster([("a", unit(0))])
    matcher.set_roster([("b", unit(1))])
    assert matcher.match(unit(0)).elder_id == "b"  # type: ignore[union-attr]
    matcher.set_roster([])
    assert matcher.match(unit(0)) == Unknown(None, math.inf, math.inf)


def test_bad_rosters_and_settings_are_refused() -> None:
    matcher = FaceMatcher()
    with pytest.raises(ValueError, match="elder ids"):
        matcher.set_templates(["a", "b"], np.zeros((1, ENCODING_DIM)))
    bad = np.zeros((1, ENCODING_DIM))
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        matcher.set_templates(["a"], bad)
    with pytest.raises(ValueError):
        FaceMatcher(threshold=0)
    with pytest.raises(ValueError):
        FaceMatcher(min_margin=-0.1)
