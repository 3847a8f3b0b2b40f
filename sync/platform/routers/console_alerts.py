"""Console page of alerts (预警): every alert in the caller's scope with its evidence, and its
trail of acknowledgements and resolutions (who, when, note). Nothing here deletes an alert;
the trail is append-only (`alert_action`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from sync.platform.completeness import evidence_of
from sync.platform.console import auth, oversight
from sync.platform.console.pages import render
from sync.platform.deps import Principal, StateDep, stamp
from sync.platform.state import PlatformState
from sync.platform.tables import Alert, AlertAction, MealPoint

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
ACTIONS = {"ack": "确认", "resolve": "解决", "reopen": "重新打开"}
STATES = {"open": "待处理", "ack": "已确认", "resolve": "已解决", "all": "全部"}
PAGE = 500
SWEEP_EVERY_S = 300.0
_last_sweep: dict[int, float] = {}
_sweep_lock = threading.Lock()


def sweep_if_due(state: PlatformState, force: bool = False) -> int:
    """The oversight sweep, at most every 5 minutes per platform (run when the page is read:
    behaviour alerts need no request of their own to be current when someone looks)."""
    with _sweep_lock:
        now = time.monotonic()
        if not force and now - _last_sweep.get(id(state), -SWEEP_EVERY_S) < SWEEP_EVERY_S:
            return 0
        _last_sweep[id(state)] = now
    return oversight.sweep(state.sessions, state.clock())


def _in_scope(state: PlatformState, who: Principal) -> Any:
    query = select(Alert).order_by(Alert.id.desc()).limit(PAGE)
    if not who.is_admin:
        query = query.where(
            Alert.point_id.in_(select(MealPoint.point_id).where(MealPoint.township == who.township))
        )
    return query


def _alerts(state: PlatformState, who: Principal, wanted: str, kind: str | None
            ) -> tuple[list[dict[str, Any]], dict[str, int]]:  # fmt: skip
    query = _in_scope(state, who)
    if kind:
        query = query.where(Alert.kind == kind)
    with state.sessions() as session:
        alerts: Sequence[Alert] = session.scalars(query).all()
        trail: dict[int, list[AlertAction]] = {}
        for act in session.scalars(
            select(AlertAction)
            .where(AlertAction.alert_id.in_([a.id for a in alerts]))
            .order_by(AlertAction.id)
        ):
            trail.setdefault(act.alert_id, []).append(act)
    rows, counts = [], dict.fromkeys(STATES, 0)
    for a in alerts:
        acts = trail.get(a.id, [])
        current = acts[-1].action if acts else "open"
        current = "open" if current == "reopen" else current
        counts[current] += 1
        counts["all"] += 1
        if wanted not in ("all", current):
            continue
        rows.append({"alert": a, "evidence": evidence_of(a), "trail": acts, "state": current})
    return rows, counts


@router.get("/console/alerts")
async def alerts_page(
    request: Request, state: StateDep, who: auth.ConsoleUser, kind: str | None = None
) -> Response:
    wanted = request.query_params.get("state", "open")
    if wanted not in STATES:
        wanted = "open"
    await run_in_threadpool(sweep_if_due, state)
    rows, counts = await run_in_threadpool(_alerts, state, who, wanted, kind or None)
    return render(request, state, "alerts.html", who, rows=rows, counts=counts, wanted=wanted,
                  states=STATES, actions=ACTIONS, kind=kind or "")  # fmt: skip


@router.post("/console/alerts/sweep")
async def sweep_now(request: Request, state: StateDep, who: auth.ConsoleAdmin) -> Response:
    await auth.checked_form(request, state)
    raised = await run_in_threadpool(sweep_if_due, state, True)
    log.info("oversight sweep by %s raised %d alert(s)", who.name, raised)
    return RedirectResponse("/console/alerts", status_code=303)


@router.post("/console/alerts/{alert_id}/act")
async def act(
    request: Request,
    alert_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    state: StateDep,
    who: auth.ConsoleUser,
) -> Response:
    """Acknowledge, resolve or reopen an alert of the caller's scope (404 outside it); a
    resolution needs a note saying what was found."""
    form = await auth.checked_form(request, state)
    action, note = form.get("action", ""), form.get("note", "").strip()[:1000]
    if action not in ACTIONS:
        raise HTTPException(422, "未知操作")
    if action == "resolve" and not note:
        raise HTTPException(422, "解决预警时请写明处理情况")
    with state.transaction() as session:
        alert = session.get(Alert, alert_id)
        point = session.get(MealPoint, alert.point_id) if alert and alert.point_id else None
        if alert is None or not (who.is_admin or (point and point.township == who.township)):
            raise HTTPException(404, f"没有编号为 {alert_id} 的预警")
        session.add(AlertAction(alert_id=alert_id, at=stamp(state.clock()), actor=who.name,
                                action=action, note=note))  # fmt: skip
    log.info("alert %d %s by %s", alert_id, action, who.name)
    back = form.get("back", "open")
    return RedirectResponse(
        f"/console/alerts?state={back if back in STATES else 'open'}", status_code=303
    )
