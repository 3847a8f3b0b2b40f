"""The books on the touchscreen: behind the PIN and CSRF, bad input shown and nothing stored,
corrections, the printable notice and its exports with formulas neutralised."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from kiosk.api.routers.books import books_of
from kiosk.runtime.services import KioskServices
from tests.support.ui import sign_in_client

EXPENSE = {
    "date": "2026-12-01", "category": "食材", "food_type": "蛋", "item": "鸡蛋", "quantity": "10",
    "unit": "斤", "amount": "45.00", "supplier": "村口小卖部", "buyer": "李秀兰",
}  # fmt: skip


@pytest.fixture
def client(caregiver_client: TestClient) -> TestClient:
    return caregiver_client


def test_books_need_the_pin_and_csrf(client: TestClient, services: KioskServices) -> None:
    assert client.get("/books", follow_redirects=False).status_code == 401
    assert client.post("/books/new/expense", data=EXPENSE).status_code in (401, 403)
    token = sign_in_client(client, "/books")
    assert client.post("/books/new/expense", data=EXPENSE).status_code == 403  # no CSRF
    resp = client.post(
        "/books/new/expense", data={**EXPENSE, "csrf": token}, follow_redirects=False
    )
    assert resp.status_code == 303
    assert [e.body["item"] for e in books_of(services).effective()] == ["鸡蛋"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "-3", "不能是负数"),
        ("amount", "四十", "请填写数字"),
        ("date", "2027-01-01", "不能晚于今天"),
        ("supplier", "=cmd|' /C calc'!A0", "不能以 = + - @ 开头"),
    ],
)
def test_bad_input_is_shown_and_nothing_stored(
    client: TestClient, services: KioskServices, field: str, value: str, message: str
) -> None:
    token = sign_in_client(client, "/books")
    resp = client.post("/books/new/expense", data={**EXPENSE, field: value, "csrf": token})
    assert resp.status_code == 422
    assert message in resp.text
    assert books_of(services).entries() == []


def test_correction_and_notice_exports(client: TestClient, services: KioskServices) -> None:
    token = sign_in_client(client, "/books")
    client.post("/books/new/expense", data={**EXPENSE, "csrf": token})
    first = books_of(services).effective()[0]
    form = client.get(f"/books/{first.entry_id}/correct").text
    assert f'value="{first.entry_id}"' in form and 'value="45.00"' in form
    client.post(
        "/books/new/expense",
        data={**EXPENSE, "amount": "40.50", "corrects": first.entry_id, "csrf": token},
    )
    client.post(
        "/books/new/donation",
        data={
            "date": "2026-12-01",
            "donor": "@王老板",
            "donor_type": "个人",
            "what": "goods",
            "goods": "大米",
            "quantity": "50",
            "unit": "斤",
            "csrf": token,
        },
    )  # fmt: skip  (refused: a formula-like donor name)
    client.post(
        "/books/new/donation",
        data={"date": "2026-12-01", "donor": "王老板", "donor_type": "个人", "what": "money",
              "amount": "200", "purpose": "改善伙食", "csrf": token},
    )  # fmt: skip
    notice = client.get("/notices/books?month=2026-12").text
    assert 'id="notice-spending">40.50<' in notice and "王老板：200.00 元" in notice
    book = load_workbook(io.BytesIO(client.get("/notices/books.xlsx?month=2026-12").content))
    cells = [c.value for row in book.active.iter_rows() for c in row if c.value is not None]
    assert Decimal("40.50") in cells and Decimal("45.00") not in cells
    assert not any(isinstance(v, str) and v.startswith("=") for v in cells)
    csv_text = client.get("/notices/books.csv?month=2026-12").content.decode("utf-8-sig")
    assert "鸡蛋" in csv_text and "40.50" in csv_text


def test_reminders_on_the_status_bar_and_fees_owed_only_behind_the_pin(
    client: TestClient, services: KioskServices
) -> None:
    bar = client.get("/api/statusbar").json()["book_reminders"]
    assert "近7天没有采购：肉、蛋、奶、蔬菜" in bar
    assert "王秀兰没有健康证记录" in bar
    assert any("公示" in r for r in bar)
    token = sign_in_client(client, "/books")
    client.post("/books/new/expense", data={**EXPENSE, "date": "2026-12-02", "csrf": token})
    client.post(
        "/books/new/health_check",
        data={"caregiver_id": "C001", "date": "2026-06-01", "expires": "2027-06-01", "csrf": token},
    )
    bar = client.get("/api/statusbar").json()["book_reminders"]
    assert "近7天没有采购：肉、奶、蔬菜" in bar
    assert not any("健康证" in r for r in bar)
    assert not any("伙食费" in r for r in bar)  # a fee owed is never on the public screen


def test_notice_board_shows_last_month_in_one_place(
    client: TestClient, services: KioskServices
) -> None:
    board = client.get("/notices").text
    assert "还没有张贴：请在10日前打印并张贴" in board
    assert 'href="/notices/books?month=2026-11"' in board
    token = sign_in_client(client, "/books")
    client.post(
        "/books/new/donation",
        data={"date": "2026-11-20", "donor": "县供销社", "donor_type": "企业", "what": "goods",
              "goods": "食用油", "quantity": "10", "unit": "桶", "csrf": token},
    )  # fmt: skip
    client.post(
        "/books/new/notice_posted", data={"date": "2026-12-01", "month": "2026-11", "csrf": token}
    )
    board = client.get("/notices").text
    assert "12月1日已张贴，请至少张贴到第5天（已1天）" in board
    assert "县供销社：食用油 10桶" in board


def test_receipt_photos_capped_checked_and_bound_to_the_entry(
    client: TestClient, services: KioskServices
) -> None:
    import cv2
    import numpy as np

    token = sign_in_client(client, "/books")
    headers = {"x-csrf-token": token, "content-type": "image/jpeg"}
    receipts = services.data_dir / "receipts"
    # 50 MB: refused by its Content-Length before a byte is read, nothing kept
    huge = client.post(
        "/books/receipt", content=b"\xff\xd8\xff" + b"0" * (50 << 20), headers=headers
    )
    assert huge.status_code == 413
    assert not receipts.exists() or not any(receipts.iterdir())
    assert client.post("/books/receipt", content=b"not a photo", headers=headers).status_code == 422
    no_csrf = client.post("/books/receipt", content=b"x", headers={"content-type": "image/jpeg"})
    assert no_csrf.status_code == 403
    _, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 200, np.uint8))
    sha = client.post("/books/receipt", content=jpeg.tobytes(), headers=headers).json()[
        "receipt_sha256"
    ]
    assert (receipts / f"{sha}.jpg").read_bytes() == jpeg.tobytes()
    assert client.get(f"/books/receipt/{sha}.jpg").content == jpeg.tobytes()
    bad = client.post(
        "/books/new/expense", data={**EXPENSE, "receipt_sha256": "../x", "csrf": token}
    )
    assert bad.status_code == 422 and "收据照片无效" in bad.text
    client.post("/books/new/expense", data={**EXPENSE, "receipt_sha256": sha, "csrf": token})
    assert books_of(services).effective()[0].body["receipt_sha256"] == sha


def test_patrols_are_in_the_safety_ledger(client: TestClient) -> None:
    token = sign_in_client(client, "/books")
    client.post(
        "/books/new/patrol",
        data={"date": "2026-12-01", "inspector": "赵海", "role": "包村领导", "findings": "台账齐全",
              "hazards": "灭火器过期", "due": "2026-12-09", "csrf": token},
    )  # fmt: skip
    ledger = client.get("/safety/ledger?month=2026-12").text
    assert "赵海 包村领导" in ledger and "灭火器过期" in ledger and "未完成" in ledger
