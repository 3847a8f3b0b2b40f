"""The village's books (公示 of purchases, spending, income, donations, meal fees, 助洁, health
certificates, township patrols) on the touchscreen.

GET  /books?month=                 the month's books and the caregiver's reminders     (session)
GET  /books/new/{kind}             a touch-only form for one kind of entry            (session)
POST /books/new/{kind}             save it (or show what is wrong, storing nothing)   (session)
GET  /books/{entry_id}/correct     the same form, filled in, saved as a correction    (session)
POST /books/{entry_id}/void        void an entry (a new entry with the reason)        (session)
GET  /notices/books?month=         the printable A4 notice of the month's books       (everyone)
GET  /notices/books.csv|.xlsx      the same as CSV / XLSX                              (everyone)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep, CheckedForm, check_csrf_header, render
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.book_forms import FORMS, pick_extras, pick_options
from kiosk.touchscreen.book_notice import books_csv, books_xlsx, notice_context
from kiosk.touchscreen.books import (
    BookError,
    Books,
    Entry,
    active_caregivers,
    fees_owed,
    month_books,
    previous_month,
    reminders,
)
from kiosk.touchscreen.notices import parse_month
from kiosk.touchscreen.receipts import (
    ReceiptError,
    receipt_path,
    snapshot_jpeg,
    store_receipt,
)
from models.tables import Elder

router = APIRouter(tags=["books"])


def books_of(services: KioskServices) -> Books:
    return Books(services.store, services.config.device.device_id, services.checkin.record_signer)


def _month(services: KioskServices, month: str | None) -> tuple[int, int]:
    if not month:
        today = services.now().date()
        return today.year, today.month
    try:
        return parse_month(month)
    except ValueError:
        raise HTTPException(status_code=422, detail="month must look like 2026-11") from None


def _elders(services: KioskServices) -> list[dict[str, str]]:
    with services.store.read() as s:
        rows = s.scalars(select(Elder).where(Elder.status == "active").order_by(Elder.group_name))
        return [
            {"id": e.elder_id, "name": e.name, "group": e.group_name, "py": e.pinyin_initials}
            for e in rows
        ]


@router.get("/books", response_class=HTMLResponse)
def books_page(
    request: Request,
    services: ServicesDep,
    caregiver: CaregiverDep,
    month: str | None = Query(default=None, max_length=7),
    saved: str = Query(default="", max_length=16),
) -> HTMLResponse:
    year, mon = _month(services, month)
    books = books_of(services)
    summary = month_books(books, services.store, year, mon)
    return render(
        request,
        "books.html",
        {
            "page": "books",
            "m": summary,
            "month": f"{year:04d}-{mon:02d}",
            "others": [
                e
                for e in books.effective()
                if e.kind not in {"expense", "income", "donation", "meal_fee"}
            ][-12:],
            "reminders": reminders(books, services.now().date()),
            "owed": fees_owed(books, services.store, services.now().date()),
            "owed_month": previous_month(services.now().date()),
            "forms": FORMS,
            "saved": saved == "1",
            "caregivers": active_caregivers(services.store),
        },
    )


def _form_page(
    request: Request,
    services: KioskServices,
    kind: str,
    values: dict[str, str],
    error: str = "",
    corrects: Entry | None = None,
) -> HTMLResponse:
    books = books_of(services)
    entries = books.entries()
    caregivers = active_caregivers(services.store)
    form = FORMS[kind]
    picks = {
        f.name: pick_options(f.name, entries, kind, pick_extras(f.name, caregivers))
        for f in form.fields
        if f.widget == "pick"
    }
    today = services.now().date()
    return render(
        request,
        "book_form.html",
        {
            "page": "books",
            "form": form,
            "values": values,
            "picks": picks,
            "error": error,
            "corrects": corrects,
            "today": today.isoformat(),
            "yesterday": (today - dt.timedelta(days=1)).isoformat(),
            "months": [f"{today:%Y-%m}", previous_month(today)],
            "caregivers": caregivers,
            "elders": _elders(services) if any(f.widget == "elder" for f in form.fields) else [],
        },
        status_code=422 if error else 200,
    )


def _entry(services: KioskServices, entry_id: str) -> Entry:
    found = next((e for e in books_of(services).entries() if e.entry_id == entry_id), None)
    if found is None:
        raise HTTPException(status_code=404, detail="no such entry")
    return found


def _kind(kind: str) -> str:
    if kind not in FORMS:
        raise HTTPException(status_code=404, detail=f"unknown kind of entry: {kind[:32]}")
    return kind


@router.get("/books/new/{kind}", response_class=HTMLResponse)
def new_entry_page(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, kind: str
) -> HTMLResponse:
    return _form_page(request, services, _kind(kind), {})


@router.post("/books/new/{kind}")
def new_entry(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm, kind: str
) -> Response:
    kind = _kind(kind)
    corrects = form.get("corrects") or None
    try:
        books_of(services).add(
            kind,
            dict(form),
            caregiver_id=caregiver.caregiver_id,
            now=services.now(),
            corrects=corrects,
        )
    except BookError as exc:
        old = _entry(services, corrects) if corrects else None
        return _form_page(request, services, kind, dict(form), str(exc), old)
    return RedirectResponse("/books?saved=1", status_code=303)


@router.post("/books/receipt")
async def upload_receipt(
    request: Request, services: ServicesDep, caregiver: CaregiverDep
) -> dict[str, str]:
    """A receipt photo as the raw body (image/jpeg or image/png), or, with an empty body, the
    camera's current frame. The guard capped the body before this reads it."""
    check_csrf_header(request)
    data = await request.body()
    try:
        if not data:
            latest = services.camera.latest() if services.camera is not None else None
            if latest is None:
                raise ReceiptError("没有摄像头画面，无法拍照")
            data = snapshot_jpeg(latest[0])
        sha = store_receipt(services.data_dir, data)
    except ReceiptError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"receipt_sha256": sha}


@router.get("/books/receipt/{sha}.jpg")
def show_receipt(sha: str, services: ServicesDep, caregiver: CaregiverDep) -> Response:
    path = receipt_path(services.data_dir, sha)
    if path is None:
        raise HTTPException(status_code=404, detail="no such receipt photo")
    return Response(
        path.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"}
    )


@router.get("/books/{entry_id}/correct", response_class=HTMLResponse)
def correct_page(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, entry_id: str
) -> HTMLResponse:
    old = _entry(services, entry_id)
    values = {k: str(v) for k, v in old.body.items()}
    values["date"] = old.entry_date.isoformat()
    return _form_page(request, services, old.kind, values, corrects=old)


@router.post("/books/{entry_id}/void")
def void_entry(
    request: Request,
    services: ServicesDep,
    caregiver: CaregiverDep,
    form: CheckedForm,
    entry_id: str,
) -> Response:
    try:
        books_of(services).void(
            entry_id, form.get("reason", ""), caregiver_id=caregiver.caregiver_id,
            now=services.now(),
        )  # fmt: skip
    except BookError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return RedirectResponse("/books?saved=1", status_code=303)


def _notice(services: KioskServices, month: str | None) -> dict[str, Any]:
    year, mon = _month(services, month)
    return notice_context(books_of(services), services.store, year, mon)


@router.get("/notices/books", response_class=HTMLResponse)
def books_notice(
    request: Request, services: ServicesDep, month: str | None = Query(default=None, max_length=7)
) -> HTMLResponse:
    return render(request, "books_notice.html", {"page": "notices", **_notice(services, month)})


@router.get("/notices/books.csv")
def books_notice_csv(
    services: ServicesDep, month: str | None = Query(default=None, max_length=7)
) -> Response:
    ctx = _notice(services, month)
    return Response(
        books_csv(ctx),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="books-{ctx["month"]}.csv"'},
    )


@router.get("/notices/books.xlsx")
def books_notice_xlsx(
    services: ServicesDep, month: str | None = Query(default=None, max_length=7)
) -> Response:
    ctx = _notice(services, month)
    return Response(
        books_xlsx(ctx, services.config.site.name),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="books-{ctx["month"]}.xlsx"'},
    )
