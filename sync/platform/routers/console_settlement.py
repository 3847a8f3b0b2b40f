"""Console pages of the monthly settlement (月结算) and the subsidy rates (补贴标准).

An operator sees the points of their township only (another township's point answers 404);
closing a month and setting rates are the county administrator's."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import zoneinfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from sync.platform import settlement
from sync.platform.audit import audit
from sync.platform.console import auth
from sync.platform.console.pages import render
from sync.platform.console.xlsx import write_settlement
from sync.platform.deps import Principal, StateDep, point_in_scope, stamp
from sync.platform.settlement import Settlement, SettlementError
from sync.platform.state import PlatformState
from sync.platform.tables import MealPoint, SettlementMonth, SubsidyRate

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
SITE = zoneinfo.ZoneInfo("Asia/Shanghai")
SERVICES = ("meal", "cleaning")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
SLOTS = ("*", "breakfast", "lunch", "dinner", "day")


def _previous_month(today: dt.date) -> str:
    last = today.replace(day=1) - dt.timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def _month(state: PlatformState, month: str | None) -> str:
    month = month or _previous_month(state.clock().astimezone(SITE).date())
    try:
        settlement.month_bounds(month)
    except SettlementError as exc:
        raise HTTPException(400, str(exc)) from None
    return month


def _load(
    state: PlatformState, who: Principal, month: str, point_id: str | None = None
) -> tuple[Settlement, dict[str, str]]:
    with state.sessions() as session:
        scope = settlement.point_ids_of(session, None if who.is_admin else who.township)
        if point_id is not None:
            scope = [point_id]
        result = settlement.load(session, month, scope, state.platform_key.public_key())
        names = {p.point_id: p.name for p in session.scalars(select(MealPoint))}
    return result, names


@router.get("/console/settlement")
async def settlement_page(
    request: Request, state: StateDep, who: auth.ConsoleUser, month: str | None = None
) -> Response:
    month = _month(state, month)
    result, names = await run_in_threadpool(_load, state, who, month)
    with state.sessions() as session:
        closed = session.scalars(
            select(SettlementMonth).order_by(SettlementMonth.month.desc())
        ).all()
    return render(
        request,
        state,
        "settlement.html",
        who,
        s=result,
        names=names,
        month=month,
        closed_months=closed,
        just_closed=request.query_params.get("closed") == "1",
    )


@router.get("/console/settlement/{month}/points/{point_id}")
async def settlement_point(
    request: Request, month: str, point_id: str, state: StateDep, who: auth.ConsoleUser
) -> Response:
    month = _month(state, month)
    point = point_in_scope(state, who, point_id)
    result, names = await run_in_threadpool(_load, state, who, month, point.point_id)
    return render(
        request,
        state,
        "settlement_point.html",
        who,
        s=result,
        names=names,
        month=month,
        point=point,
    )


@router.get("/console/settlement/{month}/print")
async def settlement_print(
    request: Request,
    month: str,
    state: StateDep,
    who: auth.ConsoleUser,
    point: str | None = None,
) -> Response:
    """Printable A4: the summary, then per point the elders' lines and the exceptions."""
    month = _month(state, month)
    if point is not None:
        point_in_scope(state, who, point)
    result, names = await run_in_threadpool(_load, state, who, month, point)
    return render(
        request,
        state,
        "settlement_print.html",
        who,
        s=result,
        names=names,
        month=month,
        printed_at=state.clock(),
    )


@router.get("/console/settlement/{month}/xlsx")
async def settlement_xlsx(
    request: Request, month: str, state: StateDep, who: auth.ConsoleUser
) -> Response:
    month = _month(state, month)
    result, names = await run_in_threadpool(_load, state, who, month)
    buf = io.BytesIO()
    write_settlement(result, buf, names)
    scope = "county" if who.is_admin else "township"
    return Response(
        buf.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="settlement-{month}-{scope}.xlsx"',
            "Cache-Control": "no-store",
        },
    )


def _close(state: PlatformState, who: Principal, month: str) -> SettlementMonth:
    now = state.clock()
    with state.transaction() as session:
        row = settlement.close(
            session, month, state.platform_key, who.name, now, now.astimezone(SITE).date()
        )
        audit(
            session,
            state,
            who,
            "close_month",
            month=month,
            meals=row.total_meals,
            amount=row.total_amount,
            digest=row.digest,
        )
    log.info(
        "month %s closed by %s: %d meals, %s yuan",
        month,
        who.name,
        row.total_meals,
        row.total_amount,
    )
    return row


@router.post("/console/settlement/{month}/close")
async def close_month(
    request: Request, month: str, state: StateDep, who: auth.ConsoleAdmin
) -> Response:
    await auth.checked_form(request, state)
    month = _month(state, month)
    try:
        row = await run_in_threadpool(_close, state, who, month)
    except SettlementError as exc:
        result, names = await run_in_threadpool(_load, state, who, month)
        return render(
            request,
            state,
            "settlement.html",
            who,
            status_code=409,
            s=result,
            names=names,
            month=month,
            closed_months=[],
            error=str(exc),
        )
    log.debug("closed %s with digest %s", month, row.digest)
    return RedirectResponse(f"/console/settlement?month={month}&closed=1", status_code=303)


# ----------------------------------------------------------------------------- rates


def _rates(state: PlatformState) -> list[SubsidyRate]:
    with state.sessions() as session:
        return list(
            session.scalars(
                select(SubsidyRate).order_by(
                    SubsidyRate.service, SubsidyRate.slot, SubsidyRate.effective_from.desc()
                )
            ).all()
        )


@router.get("/console/rates")
def rates_page(request: Request, state: StateDep, who: auth.ConsoleUser) -> Response:
    return render(
        request,
        state,
        "rates.html",
        who,
        rates=_rates(state),
        services=SERVICES,
        slots=SLOTS,
        today=state.clock().astimezone(SITE).date(),
    )


@router.post("/console/rates")
async def set_rate(request: Request, state: StateDep, who: auth.ConsoleAdmin) -> Response:
    """A rate from a date on (a new row; the history stays). A date inside a closed month is
    refused: a closed settlement never changes."""
    form = await auth.checked_form(request, state)
    try:
        service, slot = form.get("service", ""), form.get("slot", "")
        if service not in SERVICES or slot not in SLOTS:
            raise SettlementError("服务或餐次不对")
        amount = settlement.parse_amount(form.get("amount", ""))
        try:
            text = form.get("effective_from", "")
            if not DATE_RE.match(text):
                raise ValueError(text)
            since = dt.date.fromisoformat(text)
        except ValueError:
            raise SettlementError("生效日期格式应为 YYYY-MM-DD") from None
        note = form.get("note", "")[:200]
        with state.transaction() as session:
            closed = session.scalars(
                select(SettlementMonth.month).where(SettlementMonth.last_day >= since)
            ).first()
            if closed is not None:
                raise SettlementError(f"{closed} 已结账，不能从 {since} 起改标准")
            row = session.scalars(
                select(SubsidyRate).where(
                    SubsidyRate.service == service,
                    SubsidyRate.slot == slot,
                    SubsidyRate.effective_from == since,
                )
            ).first()
            if row is None:
                row = SubsidyRate(service=service, slot=slot, effective_from=since)
                session.add(row)
            row.amount, row.note = str(amount), note
            row.set_by, row.set_at = who.name, stamp(state.clock())
            audit(
                session,
                state,
                who,
                "set_rate",
                service=service,
                slot=slot,
                effective_from=since,
                amount=str(amount),
            )
    except SettlementError as exc:
        return render(
            request,
            state,
            "rates.html",
            who,
            status_code=422,
            rates=_rates(state),
            services=SERVICES,
            slots=SLOTS,
            error=str(exc),
            today=state.clock().astimezone(SITE).date(),
        )
    return RedirectResponse("/console/rates", status_code=303)
