"""The village's books: exact decimals, append-only corrections, the month's figures, reminders,
and the database refusing edits, deletions and unsigned entries."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from kiosk.touchscreen.books import (
    BookError,
    Books,
    health_reminders,
    key_food_reminder,
    month_books,
    notice_reminder,
    open_hazards,
)
from models.books import BookEntry
from models.chain import verify_books
from models.db import Store
from models.records import append_record
from models.tables import Elder, row_to_dict
from sync.signing import DeviceKey, generate_device_key

TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 12, 8, 10, 0, tzinfo=TZ)


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return generate_device_key(tmp_path / "device.key")


@pytest.fixture
def books(store: Store, key: DeviceKey) -> Books:
    return Books(store, "dev-1", lambda: key.sign_record)


def expense(**over: str) -> dict[str, str]:
    form = {
        "date": "2026-12-03",
        "category": "食材",
        "food_type": "肉",
        "item": "猪肉",
        "quantity": "2.5",
        "unit": "斤",
        "amount": "37.50",
        "supplier": "村东肉铺",
        "buyer": "李秀兰",
    }
    return {**form, **over}


def test_amounts_are_exact_decimals_and_bad_input_stores_nothing(books: Books) -> None:
    books.add("expense", expense(amount="0.10"), caregiver_id="c1", now=NOW)
    books.add("expense", expense(amount="0.20"), caregiver_id="c1", now=NOW)
    month = month_books(books, books.store, 2026, 12)
    assert month.spending == Decimal("0.30")  # 0.1 + 0.2 as floats is 0.30000000000000004
    for bad, message in [
        ({"amount": "-5"}, "负数"),
        ({"amount": "abc"}, "数字"),
        ({"amount": "1.234"}, "两位小数"),
        ({"amount": "0"}, "不能是 0"),
        ({"amount": "2000000"}, "太大"),
        ({"date": "2026-12-09"}, "不能晚于今天"),
        ({"supplier": '=HYPERLINK("http://x")'}, "不能以"),
        ({"category": "烟酒"}, "开支类别"),
        ({"item": "猪" * 201}, "太长"),
    ]:
        with pytest.raises(BookError, match=message):
            books.add("expense", expense(**bad), caregiver_id="c1", now=NOW)
    assert len(books.entries()) == 2


def test_corrections_are_new_entries_and_the_chain_verifies(books: Books, store: Store) -> None:
    first = books.add("expense", expense(), caregiver_id="c1", now=NOW)
    fixed = books.add(
        "expense", expense(amount="35.00"), caregiver_id="c1", now=NOW, corrects=first.entry_id
    )
    assert [e.entry_id for e in books.effective()] == [fixed.entry_id]
    assert len(books.entries()) == 2  # the mistaken entry is kept, superseded
    with pytest.raises(BookError, match="已经更正过"):
        books.add("expense", expense(), caregiver_id="c1", now=NOW, corrects=first.entry_id)
    books.void(fixed.entry_id, "重复录入", caregiver_id="c1", now=NOW)
    assert books.effective() == []
    with store.read() as s:
        rows = [row_to_dict(r) for r in s.scalars(select(BookEntry).order_by(BookEntry.seq))]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert verify_books(rows) == []
    rows[0]["body"] = rows[0]["body"].replace("37.50", "3.75")
    assert [f.seq for f in verify_books(rows)] == [1]


def test_database_refuses_edit_delete_and_unsigned_entries(books: Books, store: Store) -> None:
    books.add("expense", expense(), caregiver_id="c1", now=NOW)
    db = sqlite3.connect(store.db_path)
    try:
        for sql in [
            "UPDATE book_entry SET body = replace(body, '37.50', '375.00')",
            "DELETE FROM book_outbox",
            "DELETE FROM book_entry",
            "INSERT INTO book_entry SELECT 'x', 2, device_id, kind, entry_date, body, NULL,"
            " caregiver_id, created_at, hash, 'h2', '' FROM book_entry",
        ]:
            with pytest.raises(sqlite3.DatabaseError):
                db.execute(sql)
    finally:
        db.close()
    assert len(books.entries()) == 1


def test_no_key_no_entry(store: Store) -> None:
    books = Books(store, "dev-1", lambda: None)
    with pytest.raises(BookError, match="设备密钥"):
        books.add("expense", expense(), caregiver_id="c1", now=NOW)
    assert books.entries() == []


def test_month_figures(books: Books, store: Store) -> None:
    for form in [
        expense(amount="40.00"),
        expense(food_type="蔬菜", item="白菜", amount="20.00"),
        expense(food_type="粮油", item="大米", amount="40.00"),
        expense(category="燃料", item="液化气", amount="100.00"),
        expense(date="2026-11-30", amount="999.00"),  # last month
    ]:
        books.add("expense", form, caregiver_id="c1", now=NOW)
    books.add(
        "income", {"date": "2026-12-01", "source": "补贴", "amount": "300"}, caregiver_id="c1",
        now=NOW,
    )  # fmt: skip
    books.add(
        "meal_fee",
        {"date": "2026-12-02", "elder_id": "E1", "month": "2026-12", "payer_relation": "子女",
         "payer_name": "王强", "amount": "60"},
        caregiver_id="c1", now=NOW,
    )  # fmt: skip
    books.add(
        "donation",
        {"date": "2026-12-05", "donor": "县供销社", "donor_type": "企业", "what": "money",
         "amount": "500", "purpose": "添置餐桌"},
        caregiver_id="c1", now=NOW,
    )  # fmt: skip
    with store.write() as s:
        s.add(Elder(elder_id="E1", name="王秀英", updated_at=NOW))
        for d in (1, 2, 3, 4):
            append_record(
                s, signer=lambda h: "sig", record_id=f"r{d}", device_id="dev-1", elder_id="E1",
                service="meal", slot="lunch", service_date=dt.date(2026, 12, d),
                checked_in_at=dt.datetime(2026, 12, d, 11, 30, tzinfo=TZ), method="card",
            )  # fmt: skip
    month = month_books(books, store, 2026, 12)
    assert month.spending == Decimal("200.00")
    assert month.by_category()["食材"] == Decimal("100.00")
    assert month.income_by_source == {
        "补贴": Decimal("300.00"), "伙食费": Decimal("60.00"), "捐款": Decimal("500.00"),
        "其他": Decimal("0.00"),
    }  # fmt: skip
    assert month.meals_served == 4
    assert month.cost_per_meal == Decimal("50.00")
    assert month.key_food_shares() == {
        "肉": Decimal("40.0"), "蛋": Decimal("0.0"), "奶": Decimal("0.0"), "蔬菜": Decimal("20.0"),
    }  # fmt: skip


def test_reminders(books: Books) -> None:
    books.add("expense", expense(date="2026-12-07"), caregiver_id="c1", now=NOW)
    warn = key_food_reminder(books.effective(), NOW.date())
    assert warn is not None and warn.text == "近7天没有采购：蛋、奶、蔬菜"
    later = key_food_reminder(books.effective(), NOW.date() + dt.timedelta(days=7))
    assert later is not None and "肉" in later.text

    books.add(
        "health_check", {"date": "2026-01-10", "caregiver_id": "c1", "expires": "2026-12-20"},
        caregiver_id="c1", now=NOW,
    )  # fmt: skip
    names = {"c1": "李秀兰", "c2": "张桂芳"}
    found = {
        r.key: (r.level, r.text) for r in health_reminders(books.effective(), names, NOW.date())
    }
    assert found == {
        "health:c1": ("warn", "李秀兰的健康证12天后到期"),
        "health:c2": ("bad", "张桂芳没有健康证记录"),
    }
    expired = health_reminders(books.effective(), names, dt.date(2026, 12, 21))
    assert expired[0].level == "bad" and "已过期" in expired[0].text

    # 公示: warn from the 1st, red after the 10th, quiet once posted 5 days
    assert notice_reminder([], dt.date(2026, 12, 1)).level == "warn"  # type: ignore[union-attr]
    assert notice_reminder([], dt.date(2026, 12, 11)).level == "bad"  # type: ignore[union-attr]
    books.add(
        "notice_posted", {"date": "2026-12-03", "month": "2026-11"}, caregiver_id="c1", now=NOW
    )
    assert notice_reminder(books.effective(), dt.date(2026, 12, 6)) is not None  # 3 days
    assert notice_reminder(books.effective(), dt.date(2026, 12, 8)) is None

    patrol = books.add(
        "patrol",
        {"date": "2026-12-02", "inspector": "赵镇长", "role": "包村领导", "findings": "厨房整洁",
         "hazards": "灭火器过期", "rectification": "更换灭火器", "due": "2026-12-06"},
        caregiver_id="c1", now=NOW,
    )  # fmt: skip
    assert [r.level for r in open_hazards(books.effective(), NOW.date())] == ["bad"]
    closed = {**patrol.body, "date": "2026-12-02", "closed": "2026-12-07"}
    books.add("patrol", closed, caregiver_id="c1", now=NOW, corrects=patrol.entry_id)
    assert open_hazards(books.effective(), NOW.date()) == []
    assert json.loads(json.dumps(closed))["closed"] == "2026-12-07"


def test_fees_owed_lists_who_ate_last_month_without_a_fee(books: Books, store: Store) -> None:
    from kiosk.touchscreen.books import fees_owed

    with store.write() as s:
        s.add(Elder(elder_id="E1", name="王秀英", updated_at=NOW))
        append_record(
            s, signer=lambda h: "sig", device_id="dev-1", elder_id="E1", service="meal",
            slot="lunch", service_date=dt.date(2026, 11, 20),
            checked_in_at=dt.datetime(2026, 11, 20, 11, 30, tzinfo=TZ), method="card",
        )  # fmt: skip
    assert fees_owed(books, store, NOW.date()) == [("E1", "王秀英")]
    books.add(
        "meal_fee",
        {"date": "2026-12-02", "elder_id": "E1", "month": "2026-11", "payer_relation": "本人",
         "payer_name": "王秀英", "amount": "60"},
        caregiver_id="c1", now=NOW,
    )  # fmt: skip
    assert fees_owed(books, store, NOW.date()) == []
