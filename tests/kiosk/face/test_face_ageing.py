"""Templates that follow ageing: learned after a confident, live-checked check-in; capped,
recorded in audit_event, reversible from the CLI, encrypted like every template.

The store tests use real encrypted templates in a real database. The worker tests run the real
worker, matcher, guard, check-in service and database with a scripted pipeline (as
test_face_agreement.py); the liveness check is replaced by one that passes or fails on
demand (its own behaviour is tested in test_face_liveness.py / test_face_parallax.py).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from kiosk.cli.main import app
from kiosk.config import parse_config
from kiosk.face import worker as worker_module
from kiosk.face.detect import FaceBox
from kiosk.face.liveness import LivenessState
from kiosk.face.pipeline import FaceAnalysis
from kiosk.face.templates import ADAPT_CAP, FaceKey, TemplateStore
from kiosk.face.worker import FaceWorker
from kiosk.runtime.daemon import build_services
from models.db import Store
from models.roster import apply_rows
from models.tables import AuditEvent, FaceTemplate, MealRecord
from tests.support.config import BASE_CONFIG
from tests.support.roster import TZ, Clock, elder_row

T0 = dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ)
ELDER = np.zeros(128, np.float32)
ELDER[0] = 1.0
OTHER = np.zeros(128, np.float32)
OTHER[1] = 1.0  # another elder, sqrt(2) away


def near(distance: float, axis: int = 2) -> np.ndarray:
    """The elder's face seen at `distance` from the enrolled template, in its own direction."""
    v = ELDER.copy()
    v[axis] = distance
    return v


def new_store(tmp_path: Path) -> tuple[Store, TemplateStore]:
    store = Store(tmp_path / "data" / "kiosk.db")
    store.upgrade_schema()
    apply_rows(store, [elder_row(1), elder_row(2)], T0, source="test")
    templates = TemplateStore(store, FaceKey.load(tmp_path / "data"))
    templates.add("E0001", ELDER, quality=200, face_px=200, consent_ref="同意书-1", at=T0)
    templates.add("E0002", OTHER, quality=200, face_px=200, consent_ref="同意书-2", at=T0)
    return store, templates


def audit(store: Store, kind: str) -> list[dict[str, object]]:
    with store.read() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id))
        return [json.loads(a.detail) for a in rows]


# ----------------------------------------------------------------------------- the store


def test_only_confident_new_views_are_learned(tmp_path: Path) -> None:
    store, templates = new_store(tmp_path)
    day = dt.timedelta(days=1)
    assert templates.adapt("E0001", near(0.05), distance=0.05, margin=1.0, at=T0) is None  # known
    assert templates.adapt("E0001", near(0.40), distance=0.40, margin=1.0, at=T0) is None  # unsure
    assert (
        templates.adapt("E0001", near(0.20), distance=0.20, margin=0.1, at=T0) is None
    )  # close call
    # The caller's distance is re-checked against the store: a lie does not add a template.
    assert templates.adapt("E0001", near(0.60), distance=0.20, margin=1.0, at=T0) is None
    before = templates.fingerprint()
    learned = templates.adapt("E0001", near(0.20), distance=0.20, margin=0.9, at=T0 + day)
    assert learned is not None and learned.retired == []
    assert templates.fingerprint() != before and templates.count("E0001") == 2
    # once a day per elder
    assert templates.adapt("E0001", near(0.2, 3), distance=0.2, margin=0.9, at=T0 + day) is None
    (event,) = audit(store, "face_template_adapted")
    assert event == {
        "who": "face_worker", "elder": "E0001", "distance": 0.2, "margin": 0.9,
        "added": learned.template_id, "retired": [],
    }  # fmt: skip
    # encrypted at rest like any template, and under the elder's consent
    with store.read() as s:
        row = s.get(FaceTemplate, learned.template_id)
        assert row is not None and row.source == "adapt" and row.consent_ref == "同意书-1"
        assert near(0.20)[:4].tobytes() not in row.encoding
    store.close()


def test_the_cap_retires_the_oldest_learned_and_revert_restores(tmp_path: Path) -> None:
    store, templates = new_store(tmp_path)
    ids = []
    for n in range(ADAPT_CAP + 2):  # one a day, each a new view (its own axis)
        learned = templates.adapt(
            "E0001", near(0.2, 2 + n), distance=0.2, margin=0.9, at=T0 + dt.timedelta(days=n + 1)
        )
        assert learned is not None, n
        ids.append(learned.template_id)
    active = [t.id for t in templates.for_elder("E0001")]
    assert len(active) == 1 + ADAPT_CAP and ids[0] not in active and ids[1] not in active
    history = templates.history("E0001")
    assert [(r.id, r.active) for r in history if r.source == "adapt"] == [
        (ids[0], False), (ids[1], False), *[(i, True) for i in ids[2:]],
    ]  # fmt: skip
    events = audit(store, "face_template_adapted")
    assert events[-1]["retired"] == [ids[1]] and events[-2]["retired"] == [ids[0]]
    # the enrolled template is never retired by learning
    assert templates.history("E0001")[0].source == "file" and templates.history("E0001")[0].active

    # back to how it was after the second learned template (day 2, before day 3)
    result = templates.revert(
        "E0001", T0 + dt.timedelta(days=2, hours=1), T0 + dt.timedelta(days=9), who="cli"
    )
    assert sorted(result.removed) == sorted(ids[2:]) and result.restored == [ids[1], ids[0]]
    assert sorted(t.id for t in templates.for_elder("E0001")) == sorted(
        [history[0].id, ids[0], ids[1]]
    )
    (reverted,) = audit(store, "face_template_reverted")
    assert reverted["who"] == "cli" and reverted["elder"] == "E0001"
    assert templates.for_elder("E0002")[0].encoding[1] == 1.0  # another elder untouched
    store.close()


def test_cli_lists_and_reverts(tmp_path: Path) -> None:
    store, templates = new_store(tmp_path)
    learned = templates.adapt(
        "E0001", near(0.2), distance=0.2, margin=0.9, at=T0 + dt.timedelta(days=1)
    )
    assert learned is not None
    store.close()
    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG, encoding="utf-8")
    base = ["--config", str(config), "--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    listed = runner.invoke(app, [*base, "face", "templates", "--elder", "E0001"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.strip().splitlines()  # the table; log lines go to stderr
    assert len(lines) == 2 and "file" in lines[0] and "adapt" in lines[1] and "active" in lines[1]
    bad = runner.invoke(app, [*base, "face", "revert", "--elder", "E0001", "--to", "yesterday"])
    assert bad.exit_code == 2 and "not a date-time" in bad.output
    done = runner.invoke(app, [*base, "face", "revert", "--elder", "E0001", "--to", "2026-12-02"])
    assert done.exit_code == 0, done.output
    assert f"removed 1 learned template(s) [{learned.template_id}]" in done.output
    listed = runner.invoke(app, [*base, "face", "templates", "--elder", "E0001"])
    assert len(listed.stdout.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- the worker

BOX = FaceBox(100, 300, 300, 100)


class ScriptedPipeline:
    """Each frame shows the given encoding (or no face for None)."""

    def __init__(self, frames: list[np.ndarray | None]) -> None:
        self.frames = frames

    def analyze_bgr(self, _frame: np.ndarray) -> FaceAnalysis:
        encoding = self.frames.pop(0)
        if encoding is None:
            return FaceAnalysis([], None, None, reason="no face")
        return FaceAnalysis([BOX], BOX, encoding.copy())


class NoCamera:
    def wait_newer(self, seq: int, timeout: float) -> None:
        return None


class ScriptedLiveness:
    """Passes (or fails) on its first frame."""

    result = LivenessState.PASSED

    def __init__(self, *_args: object) -> None:
        self.state = LivenessState.PENDING
        self.outcome = "parallax" if self.result is LivenessState.PASSED else "failed: scripted"
        self.detail = "scripted"

    def start(self, _now: float) -> None:
        pass

    def update(self, _marks: object, _now: float) -> LivenessState:
        self.state = self.result
        return self.state


def run_worker(
    tmp_path: Path,
    frames: list[np.ndarray | None],
    face: str = "",
    live: bool = True,
    mode: str = "parallax",
) -> tuple[int, list[dict[str, object]], int]:
    """(check-ins, learned-template audit events, templates of E0001) after the frames."""
    clock = Clock(T0)
    config = parse_config(BASE_CONFIG + f"face: {{liveness: {mode}{face}}}\n")
    store, templates = new_store(tmp_path)
    services = build_services(config, tmp_path / "data", readers=[], store=store, clock=clock)
    ScriptedLiveness.result = LivenessState.PASSED if live else LivenessState.FAILED
    worker = FaceWorker(
        config.face, NoCamera(), services.checkin, templates,  # type: ignore[arg-type]
        pipeline=ScriptedPipeline(frames),  # type: ignore[arg-type]
    )  # fmt: skip
    worker.reload()
    rng = np.random.default_rng(0)
    for _ in range(len(frames)):
        worker.process(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), captured=0.0)
    with store.read() as s:
        checkins = len(s.scalars(select(MealRecord)).all())
    result = checkins, audit(store, "face_template_adapted"), templates.count("E0001")
    store.close()
    return result


@pytest.fixture
def scripted_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "LivenessCheck", ScriptedLiveness)


def test_a_live_confident_check_in_teaches_a_template(
    tmp_path: Path, scripted_liveness: None
) -> None:
    checkins, events, count = run_worker(tmp_path, [near(0.25), near(0.22), near(0.25)])
    assert checkins == 1 and count == 2
    (event,) = events
    assert event["who"] == "face_worker" and event["elder"] == "E0001"
    assert event["distance"] == pytest.approx(0.22, abs=1e-4)  # the visit's best frame


def test_nothing_is_learned_without_liveness_or_confidence(
    tmp_path: Path, scripted_liveness: None
) -> None:
    frames = [near(0.25), near(0.22), near(0.25)]
    assert run_worker(tmp_path / "a", list(frames), live=False)[1:] == ([], 1)  # failed
    off = run_worker(tmp_path / "b", list(frames), mode="off")
    assert off[0] == 1 and off[1:] == ([], 1)  # checked in, no liveness: nothing learned
    unsure = run_worker(tmp_path / "c", [near(0.4), near(0.4), near(0.4)])
    assert unsure[0] == 1 and unsure[1:] == ([], 1)  # within 0.45, far from confident
    disabled = run_worker(tmp_path / "d", list(frames), face=", learn_templates: false")
    assert disabled[0] == 1 and disabled[1:] == ([], 1)


def test_a_card_evidence_frame_never_teaches(tmp_path: Path) -> None:
    """Somebody near E0001's templates (0.2: learnable) stands at the terminal while E0002's
    card is tapped, and then E0001's: the evidence is assessed both times, nothing is learned."""
    import time

    from hardware.camera import CameraState, CameraStatus
    from kiosk.checkin.rules import CheckinRequest, Method
    from kiosk.face.card_evidence import CardEvidence

    class AbsentCamera(NoCamera):
        def status(self) -> CameraStatus:
            return CameraStatus(CameraState.ABSENT, "test")

    config = parse_config(BASE_CONFIG + "face: {liveness: parallax}\n")
    store, templates = new_store(tmp_path)
    services = build_services(config, tmp_path / "data", readers=[], store=store, clock=Clock(T0))
    worker = FaceWorker(
        config.face, NoCamera(), services.checkin, templates,  # type: ignore[arg-type]
        pipeline=ScriptedPipeline([]),  # type: ignore[arg-type]
    )  # fmt: skip
    worker.reload()
    worker.last_encoding = (time.monotonic(), near(0.2))
    evidence = CardEvidence("evidence", AbsentCamera(), worker, templates, store)  # type: ignore[arg-type]
    for n in (2, 1):
        req = evidence.apply(CheckinRequest(Method.CARD, card_uid=f"{0xA0000000 + n:08X}"))
        assert (req.method is Method.CARD_FACE) == (n == 1), req  # E0001's face was seen
    assert templates.count("E0001") == 1 and audit(store, "face_template_adapted") == []
    store.close()
