"""The county console's entry: login, logout, the 今日 page, static files, and `install`, which
adds every console router to the platform app (docs/console.md)."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import zoneinfo
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.platform.console import auth, pages, visitors
from sync.platform.console.pages import HERE, render
from sync.platform.deps import Principal, StateDep, point_in_scope
from sync.platform.settlement import SERVICE_LABELS, SLOT_LABELS
from sync.platform.state import PlatformState
from sync.platform.tables import Device, HeartbeatRow, MealPoint, Record

router = APIRouter(include_in_schema=False)
SITE = zoneinfo.ZoneInfo("Asia/Shanghai")
OFFLINE_AFTER = dt.timedelta(minutes=15)  # three missed heartbeats (kiosk default: 300 s)
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}


def scoped_points(state: PlatformState, who: Principal) -> list[MealPoint]:
    query = select(MealPoint).order_by(MealPoint.township, MealPoint.point_id)
    if not who.is_admin:
        query = query.where(MealPoint.township == who.township)
    with state.sessions() as session:
        return list(session.scalars(query).all())


def slot_label(key: str) -> str:
    """ "meal/lunch" -> "助餐·午餐" """
    service, _, slot = key.partition("/")
    return f"{SERVICE_LABELS.get(service, service)}·{SLOT_LABELS.get(slot, slot)}"


# ----------------------------------------------------------------------------- login


@router.get("/login")
def login_form(request: Request, state: StateDep) -> Response:
    pre = auth.new_pre_login()
    resp = render(request, state, "login.html", None, login_csrf=auth.login_csrf(state, pre))
    resp.set_cookie(
        auth.PRE_COOKIE,
        pre,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/login",
    )
    return resp


@router.post("/login")
async def login(request: Request, state: StateDep) -> Response:
    form = await auth.read_form(request)
    pre = request.cookies.get(auth.PRE_COOKIE, "")
    if not pre or not hmac.compare_digest(form.get("csrf", ""), auth.login_csrf(state, pre)):
        raise HTTPException(403, "登录页已过期（CSRF 校验失败），请刷新后重试")
    result = auth.login(state, form.get("token", ""))
    if result is None:
        return render(
            request,
            state,
            "login.html",
            None,
            status_code=401,
            error="令牌无效或已停用",
            login_csrf=auth.login_csrf(state, pre),
        )
    sid, _who = result
    done = RedirectResponse("/", status_code=303)
    done.set_cookie(
        auth.COOKIE,
        auth.cookie_value(state, sid),
        max_age=int(auth.SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    done.delete_cookie(auth.PRE_COOKIE, path="/login")
    return done


@router.post("/logout")
async def logout(request: Request, state: StateDep, who: auth.ConsoleUser) -> Response:
    await auth.checked_form(request, state)
    auth.logout(state, request.state.console_sid)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(auth.COOKIE, path="/")
    return resp


@router.get("/console/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, "no such file")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name])


# ----------------------------------------------------------------------------- today


def _today_rows(state: PlatformState, points: Sequence[MealPoint]) -> list[dict[str, Any]]:
    now = state.clock()
    today = now.astimezone(SITE).date()
    ids = [p.point_id for p in points]
    with state.sessions() as session:
        devices = session.scalars(
            select(Device).where(Device.point_id.in_(ids)).order_by(Device.device_id)
        ).all()
        beats = {
            h.device_id: h
            for h in session.scalars(
                select(HeartbeatRow).where(
                    HeartbeatRow.device_id.in_([d.device_id for d in devices])
                )
            )
        }
        uploaded = session.execute(
            select(Device.point_id, Record.service, Record.slot, func.count())
            .join(Device, Device.device_id == Record.device_id)
            .where(Record.service_date == today, Device.point_id.in_(ids))
            .group_by(Device.point_id, Record.service, Record.slot)
        ).all()
        roaming = visitors.counts(session, ids, today)
    rows = []
    for p in points:
        mine = [d for d in devices if d.point_id == p.point_id]
        row: dict[str, Any] = {
            "point_id": p.point_id,
            "name": p.name,
            "township": p.township,
            "devices": mine,
            "online": False,
            "last_heartbeat": None,
            "headcount": {},
            "backlog": None,
            "oldest_unsent": None,
            "caregivers": [],
            "location": None,
            "uploaded": {
                slot_label(f"{s}/{sl}"): n for pid, s, sl, n in uploaded if pid == p.point_id
            },
            # 全城通: visitors served here (外点来客), own elders served elsewhere (外出就餐).
            "visitors_here": {slot_label(k): n for k, n in roaming[p.point_id].here.items()},
            "visitors_away": {slot_label(k): n for k, n in roaming[p.point_id].away.items()},
        }
        for d in mine:
            beat = beats.get(d.device_id)
            if beat is None:
                continue
            body = json.loads(beat.body)
            at = dt.datetime.fromisoformat(beat.received_at)
            if row["last_heartbeat"] is None or beat.received_at > row["last_heartbeat"]:
                row["last_heartbeat"] = beat.received_at
            if d.status == "active" and now - at <= OFFLINE_AFTER:
                row["online"] = True
            if at.astimezone(SITE).date() == today:
                for key, n in body.get("headcount", {}).items():
                    label = slot_label(key)
                    row["headcount"][label] = row["headcount"].get(label, 0) + int(n)
            row["backlog"] = (row["backlog"] or 0) + int(body.get("queue_depth", 0))
            age = body.get("oldest_unsent_age_s")
            if age:
                row["oldest_unsent"] = f"{int(age) // 60} 分钟"
            row["caregivers"] += [
                c for c in body.get("caregivers_on_duty", []) if c not in row["caregivers"]
            ]
            row["location"] = body.get("location") or row["location"]
        rows.append(row)
    return rows


@router.get("/")
def today_page(request: Request, state: StateDep, who: auth.ConsoleUser) -> Response:
    rows = _today_rows(state, scoped_points(state, who))
    return render(
        request,
        state,
        "today.html",
        who,
        today=state.clock().astimezone(SITE).date(),
        points=rows,
        online=sum(1 for r in rows if r["online"]),
        uploaded_total=sum(sum(r["uploaded"].values()) for r in rows),
        offline_minutes=int(OFFLINE_AFTER.total_seconds() // 60),
    )


@router.get("/console/visitors/{point_id}")
def visitors_page(request: Request, point_id: str, state: StateDep, who: auth.ConsoleUser
                  ) -> Response:  # fmt: skip
    """Today's roaming meals of one point in the viewer's scope (others: 404)."""
    point = point_in_scope(state, who, point_id)
    today = state.clock().astimezone(SITE).date()
    with state.sessions() as session:
        here, away = visitors.meals(session, point, today, who)
    return render(
        request, state, "visitors.html", who, point=point, today=today, here=here, away=away,
        slot_label=slot_label,
    )  # fmt: skip


# ----------------------------------------------------------------------------- wiring


async def _to_login(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/login", status_code=303)


HEADINGS = {400: "请求有误", 403: "没有权限", 404: "找不到", 409: "不能这样做", 413: "内容太大",
            422: "填写有误"}  # fmt: skip


def _console_path(path: str) -> bool:
    return path in ("/", "/login", "/logout") or path.startswith("/console/")


async def _http_error(request: Request, exc: Exception) -> Response:
    """On console pages an error is a Chinese page that says what was wrong; the API keeps
    FastAPI's JSON answer."""
    assert isinstance(exc, StarletteHTTPException)
    if not _console_path(request.url.path) or exc.status_code in (301, 302, 303, 307):
        return await http_exception_handler(request, exc)
    detail = exc.detail if isinstance(exc.detail, str) else "请求的内容不对"
    page = pages.env.get_template("error.html").render(
        who=None, status=exc.status_code, detail=detail,
        heading=HEADINGS.get(exc.status_code, "出错了"), path=request.url.path,
    )  # fmt: skip
    return HTMLResponse(page, status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Add the console's routers and its login redirect to the platform app."""
    from sync.platform.routers import console_alerts, console_roster, console_settlement

    app.add_exception_handler(auth.LoginRequiredError, _to_login)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(router)
    app.include_router(console_settlement.router)
    app.include_router(console_alerts.router)
    app.include_router(console_roster.router)
