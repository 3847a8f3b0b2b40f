"""PresenceGuard: one check-in per appearance."""

from __future__ import annotations

from kiosk.face.guard import PresenceGuard


def test_face_that_stays_in_view_fires_once() -> None:
    guard = PresenceGuard(rearm_after_s=5.0)
    fired = [guard.observe("e1", now=t * 0.2) for t in range(100)]  # 20 s, seen every 0.2 s
    assert fired.count(True) == 1
    assert fired[0]


def test_rearms_only_after_the_face_has_been_gone() -> None:
    guard = PresenceGuard(rearm_after_s=5.0)
    assert guard.observe("e1", now=0.0)
    assert not guard.observe("e1", now=4.9)
    assert guard.in_view("e1", now=9.0)
    assert guard.observe("e1", now=10.0)  # gone for 5.1 s
    assert not guard.in_view("e1", now=20.0)


def test_elders_are_independent_and_forget_rearms() -> None:
    guard = PresenceGuard(rearm_after_s=5.0)
    assert guard.observe("e1", now=0.0)
    assert guard.observe("e2", now=0.1)
    assert not guard.observe("e1", now=0.2)
    guard.forget("e1")
    assert guard.observe("e1", now=0.3)


def test_memory_is_pruned() -> None:
    guard = PresenceGuard(rearm_after_s=1.0)
    for i in range(500):
        guard.observe(f"e{i}", now=float(i))
    assert len(guard._last_seen) <= 66
