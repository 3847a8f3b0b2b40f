"""Console pages of meal points (花名册与终端): a point's published roster and its terminals;
publishing a roster from a CSV file (signed for the kiosks as by POST /v1/admin/roster), issuing
a one-time enrolment code, retiring a terminal. Publishing and codes are a township operator's
acts (the administrator creates an operator for them, threat model §6); retiring is the
administrator's or the township operator's. Every act is in the audit log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import func, select

from sync.platform.audit import audit
from sync.platform.body import ROSTER_CAP
from sync.platform.console import auth
from sync.platform.console.pages import render
from sync.platform.credentials import code_digest, new_enrolment_code
from sync.platform.deps import OPERATOR, Principal, StateDep, point_in_scope, stamp
from sync.platform.routers.console import scoped_points
from sync.platform.routers.devices import _close_key
from sync.platform.state import PlatformState
from sync.platform.tables import (
    AuditEvent,
    Device,
    EnrolmentCode,
    HeartbeatRow,
    MealPoint,
    RosterEntry,
    RosterVersion,
)
from sync.wire import RosterElder

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
MAX_ROWS = 50_000
# CSV header -> RosterElder field; English names as in the wire format, or the Chinese ones
# a township office writes.
COLUMNS = {
    "elder_id": "elder_id", "编号": "elder_id", "老人编号": "elder_id",
    "name": "name", "姓名": "name",
    "id_number_masked": "id_number_masked", "身份证": "id_number_masked",
    "身份证号": "id_number_masked",
    "card_uid": "card_uid", "卡号": "card_uid",
    "group": "group", "组": "group", "分组": "group",
    "contact_phone": "contact_phone", "电话": "contact_phone", "联系电话": "contact_phone",
    "status": "status", "状态": "status",
    "agreement_signed": "agreement_signed", "已签协议": "agreement_signed",
}  # fmt: skip
STATUS_WORDS = {"在册": "active", "暂停": "suspended", "已故": "deceased", "迁出": "moved",
                "移除": "removed"}  # fmt: skip
YES = {"1", "true", "yes", "是", "y"}
NO = {"0", "false", "no", "否", "n"}


class RosterFileError(ValueError):
    """What is wrong with an uploaded roster, by row (shown on the page)."""


def _values(fields: list[str | None], row: list[str], n: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field, cell in zip(fields, row, strict=False):
        if field is None or not cell.strip():
            continue
        value: Any = cell.strip()
        if field == "status":
            value = STATUS_WORDS.get(value, value)
        elif field == "agreement_signed":
            if value.lower() not in YES | NO:
                raise RosterFileError(f"第 {n} 行：已签协议应为 是/否，而不是 {value!r}")
            value = value.lower() in YES
        values[field] = value
    return values


def parse_roster_csv(text: str) -> list[RosterElder]:
    """Rows of a roster CSV as wire elders; RosterFileError naming the row and the field."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        fields = [COLUMNS.get(h.strip()) for h in next(reader)]
    except StopIteration:
        raise RosterFileError("文件是空的") from None
    except csv.Error as exc:
        raise RosterFileError(f"CSV 格式错误：{exc}") from None
    if "elder_id" not in fields or "name" not in fields:
        raise RosterFileError("第 1 行应为表头，至少要有“编号”和“姓名”两列（或 elder_id, name）")
    elders: dict[str, RosterElder] = {}
    try:
        for n, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(elders) >= MAX_ROWS:
                raise RosterFileError(f"超过 {MAX_ROWS} 行")
            try:
                elder = RosterElder.model_validate(_values(fields, row, n))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first["loc"])
                raise RosterFileError(f"第 {n} 行：{where} 不对（{first['msg']}）") from None
            if elder.elder_id in elders:
                raise RosterFileError(f"第 {n} 行：编号 {elder.elder_id} 重复")
            elders[elder.elder_id] = elder
    except csv.Error as exc:
        raise RosterFileError(f"CSV 格式错误：{exc}") from None
    if not elders:
        raise RosterFileError("文件中没有老人")
    return list(elders.values())


def publish(state: PlatformState, who: Principal, point_id: str, elders: list[RosterElder]
            ) -> int:  # fmt: skip
    """Upsert the elders and bump the point's roster version, as POST /v1/admin/roster does
    (the kiosks pull it signed, incrementally by version)."""
    with state.transaction() as session:
        current = session.get(RosterVersion, point_id, with_for_update=True)
        if current is None:
            current = RosterVersion(point_id=point_id, version=0)
            session.add(current)
        current.version += 1
        for elder in elders:
            row = session.get(RosterEntry, (point_id, elder.elder_id))
            if row is None:
                row = RosterEntry(point_id=point_id, elder_id=elder.elder_id)
                session.add(row)
            row.name, row.id_number_masked = elder.name, elder.id_number_masked
            row.card_uid, row.group_name = elder.card_uid, elder.group
            row.contact_phone, row.status = elder.contact_phone, elder.status
            row.agreement_signed, row.version = elder.agreement_signed, current.version
        version = current.version
        audit(session, state, who, "publish_roster", point_id=point_id, version=version,
              elders=len(elders), via="console")  # fmt: skip
    log.info("roster of %s now at version %d (console, %s)", point_id, version, who.name)
    return version


def _point_view(state: PlatformState, point: MealPoint) -> dict[str, Any]:
    with state.sessions() as session:
        roster = session.scalars(
            select(RosterEntry)
            .where(RosterEntry.point_id == point.point_id)
            .order_by(RosterEntry.elder_id)
        ).all()
        version = session.get(RosterVersion, point.point_id)
        devices = session.scalars(
            select(Device).where(Device.point_id == point.point_id).order_by(Device.device_id)
        ).all()
        beats = {h.device_id: h.received_at for h in session.scalars(
            select(HeartbeatRow).where(HeartbeatRow.device_id.in_([d.device_id for d in devices]))
        )}  # fmt: skip
        codes = session.scalars(
            select(EnrolmentCode)
            .where(EnrolmentCode.point_id == point.point_id)
            .order_by(EnrolmentCode.issued_at.desc())
            .limit(20)
        ).all()
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.point_id == point.point_id)
            .order_by(AuditEvent.id.desc())
            .limit(30)
        ).all()
    return {"point": point, "roster": roster, "version": version.version if version else 0,
            "devices": devices, "beats": beats, "codes": codes, "events": events}  # fmt: skip


def _render_point(request: Request, state: PlatformState, who: Principal, point: MealPoint,
                  status_code: int = 200, **extra: Any) -> Response:  # fmt: skip
    return render(request, state, "point.html", who, status_code=status_code,
                  now=stamp(state.clock()), **_point_view(state, point), **extra)  # fmt: skip


@router.get("/console/points")
def points_page(request: Request, state: StateDep, who: auth.ConsoleUser) -> Response:
    points = scoped_points(state, who)
    ids = [p.point_id for p in points]
    with state.sessions() as session:
        elders = dict(session.execute(
            select(RosterEntry.point_id, func.count()).where(RosterEntry.point_id.in_(ids),
                   RosterEntry.status == "active").group_by(RosterEntry.point_id)
        ).all())  # fmt: skip
        versions = {v.point_id: v.version for v in session.scalars(
            select(RosterVersion).where(RosterVersion.point_id.in_(ids)))}  # fmt: skip
        terminals = dict(session.execute(
            select(Device.point_id, func.count()).where(Device.point_id.in_(ids),
                   Device.status == "active").group_by(Device.point_id)
        ).all())  # fmt: skip
    return render(request, state, "points.html", who, points=points, elders=elders,
                  versions=versions, terminals=terminals)  # fmt: skip


@router.get("/console/points/{point_id}")
def point_page(request: Request, point_id: str, state: StateDep, who: auth.ConsoleUser
               ) -> Response:  # fmt: skip
    return _render_point(request, state, who, point_in_scope(state, who, point_id))


def _operator_only(who: Principal) -> None:
    if who.role != OPERATOR:
        raise HTTPException(403, "只有乡镇操作员可以发布花名册、发放登记码（管理员请先建操作员）")


@router.post("/console/points/{point_id}/roster")
async def publish_page(request: Request, point_id: str, state: StateDep,
                       who: auth.ConsoleUser) -> Response:  # fmt: skip
    point = point_in_scope(state, who, point_id)
    _operator_only(who)
    form = await auth.checked_form(request, state, ROSTER_CAP)
    try:
        elders = parse_roster_csv(form.get("csv", ""))
    except RosterFileError as exc:
        return _render_point(request, state, who, point, 422, error=f"未发布：{exc}",
                             csv_text=form.get("csv", "")[:200_000])  # fmt: skip
    version = publish(state, who, point.point_id, elders)
    return _render_point(
        request,
        state,
        who,
        point,
        info=f"已发布第 {version} 版花名册（{len(elders)} 人），终端下次同步时取到。",
    )


@router.post("/console/points/{point_id}/codes")
async def issue_code_page(request: Request, point_id: str, state: StateDep,
                          who: auth.ConsoleUser) -> Response:  # fmt: skip
    point = point_in_scope(state, who, point_id)
    _operator_only(who)
    form = await auth.checked_form(request, state)
    try:
        hours = float(form.get("ttl_hours", "24"))
    except ValueError:
        hours = -1
    if not 0 < hours <= 24 * 7:
        return _render_point(request, state, who, point, 422, error="有效期应在 0 到 168 小时之间")
    now = state.clock()
    code = new_enrolment_code()
    expires = now + min(dt.timedelta(hours=hours), state.limits.code_max_ttl)
    with state.transaction() as session:
        session.add(EnrolmentCode(
            code_sha256=code_digest(code), point_id=point.point_id, device_id=None,
            issued_by=who.name, issued_at=stamp(now), expires_at=stamp(expires),
        ))  # fmt: skip
        audit(session, state, who, "issue_code", point_id=point.point_id, expires_at=expires,
              via="console")  # fmt: skip
    return _render_point(request, state, who, point, new_code=code, code_expires=stamp(expires))


@router.post("/console/points/{point_id}/devices/{device_id}/retire")
async def retire_page(request: Request, point_id: str, device_id: str, state: StateDep,
                      who: auth.ConsoleUser) -> Response:  # fmt: skip
    point = point_in_scope(state, who, point_id)
    form = await auth.checked_form(request, state)
    reason = form.get("reason", "").strip()[:500]
    if not reason:
        return _render_point(request, state, who, point, 422, error="停用终端须写明原因")
    now = state.clock()
    with state.transaction() as session:
        device = session.get(Device, device_id, with_for_update=True)
        if device is None or device.point_id != point.point_id:
            raise HTTPException(404, f"本点没有终端 {device_id}")
        if device.status == "retired":
            return _render_point(request, state, who, point, 409, error=f"{device_id} 已停用")
        head = _close_key(session, device, now)
        device.status = "retired"
        audit(session, state, who, "retire", point_id=point.point_id, device_id=device_id,
              reason=reason, last_seq=head, via="console")  # fmt: skip
    return _render_point(
        request,
        state,
        who,
        point,
        info=f"终端 {device_id} 已停用：其令牌与密钥即刻失效（最后序号 {head}）。",
    )
