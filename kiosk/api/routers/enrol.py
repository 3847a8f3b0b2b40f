"""Face enrolment on the touchscreen (caregiver session; CSRF on every POST).

GET  /enrol?q=&elder_id=&mode=face|card   choose an elder (search like manual check-in), then
                                          enrol a face or bind a card
GET  /api/enrol/quality                   the enrolment photo gates on the newest frame: a hint
POST /api/enrol                           elder_id, consent=yes, consent_ref -> typed result;
                                          watches the camera for CAPTURE_SECONDS and keeps the
                                          best SESSION_KEEP distinct frames (kiosk.face.enrol)

The page's live preview is camera.py (/api/camera/snapshot.jpg); its card mode talks to
card_binding.py (/api/card-binding).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from numpy.typing import NDArray

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep, CheckedForm, render
from kiosk.api.routers.elders import groups, pick_elders
from kiosk.face.enrol import Enroller, EnrolRefusal, SessionEnrolled
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.masking import mask_id_number
from models.tables import AuditEvent, Elder

router = APIRouter(tags=["enrol"])

CONSENT_TEXT = (
    "我已经向老人（或家属）讲清楚：登记人脸是为了吃饭时刷脸签到；照片不保存，"
    "只在这台机器上加密保存一串人脸特征；不愿意刷脸也可以一直刷卡，随时可以要求删除。"
    "老人（或家属）已经在知情同意书上签字。"
)
HINTS = {  # what the preview says, shortly, for each photo gate
    EnrolRefusal.NO_FACE: "请老人正对摄像头",
    EnrolRefusal.SEVERAL_FACES: "画面里不止一个人，请只留老人一人",
    EnrolRefusal.FACE_TOO_SMALL: "脸太小，请靠近一点",
    EnrolRefusal.BLURRED: "画面模糊，请别动，或擦一擦镜头",
    EnrolRefusal.TOO_DARK: "太暗了，请开灯或换个亮处",
    EnrolRefusal.TOO_BRIGHT: "太亮了，请避开强光",
    EnrolRefusal.POSE: "请老人正对摄像头，头摆正",
}
# A live session: a few seconds of the elder in front of the camera, a frame every 0.3 s (the
# elder moves a little between them, which gives distinct templates); the gates and the
# encoding then take ~0.15 s a frame on the reference machine.
CAPTURE_SECONDS = 3.0
CAPTURE_INTERVAL_S = 0.3
CAPTURE_FRAMES = 10
_enroller_lock = threading.Lock()
_quality_lock = threading.Lock()


def _enroller(request: Request) -> Enroller:
    """One Enroller per app (its TemplateStore holds the face key); FaceKeyError if no key."""
    from kiosk.face.templates import FaceKey, TemplateStore

    state = request.app.state
    with _enroller_lock:
        enroller = getattr(state, "enroller", None)
        if enroller is None:
            services = state.services
            templates = TemplateStore(services.store, FaceKey.load(services.data_dir))
            enroller = Enroller.from_config(templates, services.config.face)
            state.enroller = enroller
    return enroller


def _frame_rgb(services: KioskServices) -> NDArray[np.uint8] | None:
    """The newest camera frame as RGB, or None (no camera, or no frame yet)."""
    latest = services.camera.latest() if services.camera is not None else None
    if latest is None:
        return None
    return np.asarray(cv2.cvtColor(latest[0], cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _capture_frames(services: KioskServices) -> list[NDArray[np.uint8]]:
    """Distinct camera frames (RGB) over CAPTURE_SECONDS: a frame is taken only when the
    camera has a newer one than the last taken (a frozen camera gives one frame)."""
    camera = services.camera
    if camera is None:
        return []
    frames: list[NDArray[np.uint8]] = []
    last_seq = -1
    deadline = time.monotonic() + CAPTURE_SECONDS
    while len(frames) < CAPTURE_FRAMES:
        latest = camera.latest()
        if latest is not None and latest[1] != last_seq:
            last_seq = latest[1]
            frames.append(np.asarray(cv2.cvtColor(latest[0], cv2.COLOR_BGR2RGB), dtype=np.uint8))
        if time.monotonic() + CAPTURE_INTERVAL_S > deadline:
            break
        time.sleep(CAPTURE_INTERVAL_S)  # the sampling interval of the session, not a wait
    return frames


def _elder(services: KioskServices, elder_id: str) -> dict[str, Any] | None:
    if not elder_id:
        return None
    with services.store.read() as s:
        e = s.get(Elder, elder_id)
        if e is None:
            return None
        return {
            "elder_id": e.elder_id,
            "name": e.name,
            "group": e.group_name,
            "id_number": mask_id_number(e.id_number_masked),
            "cards": len(e.cards),
        }


@router.get("/enrol", response_class=HTMLResponse)
def enrol_page(
    request: Request,
    services: ServicesDep,
    caregiver: CaregiverDep,
    q: str = Query(default="", max_length=32),
    group: str = Query(default="", max_length=64),
    elder_id: str = "",
    mode: str = "face",
) -> HTMLResponse:
    elder = _elder(services, elder_id)
    listing, elders = pick_elders(services, q, group) if elder is None else ("", [])
    today = services.now().date()
    return render(
        request,
        "enrol.html",
        {
            "page": "enrol",
            "q": q,
            "elders": elders,
            "group": group,
            "groups": groups(services),
            "listing": listing,
            "elder": elder,
            "mode": "card" if mode == "card" else "face",
            "camera": services.camera is not None,
            "consent_text": CONSENT_TEXT,
            "consent_ref": f"同意书-{today:%Y%m%d}-{elder_id}" if elder else "",
        },
    )


@router.get("/api/enrol/quality")
def enrol_quality(
    request: Request, services: ServicesDep, caregiver: CaregiverDep
) -> dict[str, Any]:
    if services.camera is None:
        return {"state": "no_camera", "hint": "没有摄像头，不能登记人脸"}
    image = _frame_rgb(services)
    if image is None:
        return {"state": "no_frame", "hint": "摄像头还没有画面，请稍等"}
    if not _quality_lock.acquire(blocking=False):  # one detection at a time; the page retries
        return {"state": "busy", "hint": ""}
    try:
        refusal = _enroller(request).check_photo(image)
    finally:
        _quality_lock.release()
    if refusal is None:
        return {"state": "ok", "hint": "可以登记了"}
    return {"state": str(refusal.reason), "hint": HINTS.get(refusal.reason, refusal.message)}


@router.post("/api/enrol")
def enrol_face(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm
) -> JSONResponse:
    from kiosk.face.templates import FaceKeyError

    elder_id = form.get("elder_id", "")
    if form.get("consent") != "yes":
        return JSONResponse(
            {
                "outcome": "refused",
                "reason": str(EnrolRefusal.NO_CONSENT),
                "message": "请先勾选：老人（或家属）已签字同意",
            },
            status_code=422,
        )
    if services.camera is None or services.camera.latest() is None:
        raise HTTPException(503, "摄像头没有画面，不能登记")
    try:
        enroller = _enroller(request)
    except (FaceKeyError, OSError) as exc:
        raise HTTPException(503, f"人脸密钥有问题，请联系技术员：{exc}") from None
    consent_ref = form.get("consent_ref", "")
    if not consent_ref.strip() or _elder(services, elder_id) is None:  # refused unwatched
        frames: list[NDArray[np.uint8]] = []
    else:
        frames = _capture_frames(services)
    now = services.now()
    result = enroller.enrol_frames(elder_id, frames, consent_ref, now, source="screen")
    del frames  # nothing of the pictures is kept
    detail: dict[str, Any] = {"elder": elder_id, "caregiver": caregiver.caregiver_id}
    if isinstance(result, SessionEnrolled):
        best = result.kept[0]
        body = {
            "outcome": "enrolled",
            "message": result.message,
            "templates": result.templates,
            "kept": len(result.kept),
            "frames": result.frames,
            "face_px": best.face_px,
            "sharpness": round(best.sharpness),
        }
        kind = "face_enrolled"
        detail["template"] = best.template_id
        detail["templates"] = [e.template_id for e in result.kept]
        detail["frames"], detail["usable"] = result.frames, result.usable
    else:
        body = {"outcome": "refused", "reason": str(result.reason), "message": result.message}
        kind = "face_enrol_refused"
        detail["reason"] = str(result.reason)
    with services.store.write() as s:
        s.add(AuditEvent(at=now, kind=kind, detail=json.dumps(detail)))
    return JSONResponse(body)
