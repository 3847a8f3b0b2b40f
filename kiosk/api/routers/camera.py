"""GET /api/camera/snapshot.jpg: the newest camera frame as JPEG, for the enrolment preview.

Caregiver session only. Encoded in memory and sent with no-store: never written anywhere.
"""

from __future__ import annotations

import cv2
from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep

router = APIRouter(prefix="/api/camera", tags=["camera"])

JPEG_QUALITY = 70


@router.get("/snapshot.jpg")
def camera_snapshot(services: ServicesDep, caregiver: CaregiverDep) -> Response:
    if services.camera is None:
        raise HTTPException(404, "no camera configured")
    latest = services.camera.latest()
    if latest is None:
        raise HTTPException(503, "no frame yet")
    ok, jpeg = cv2.imencode(".jpg", latest[0], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise HTTPException(500, "could not encode the frame")
    return Response(
        jpeg.tobytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store, private"}
    )
