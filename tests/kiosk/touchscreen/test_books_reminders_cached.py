"""The books' reminders on the status bar (polled every few seconds) read the entries only
when the books changed: every new entry, correction or void shows at the next poll."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kiosk.touchscreen.books import Books, Entry, reminders
from models.db import Store
from sync.signing import generate_device_key
from tests.support.roster import TZ

NOW = dt.datetime(2026, 12, 8, 12, 0, tzinfo=TZ)


def purchase(food_type: str) -> dict[str, str]:
    return {
        "date": "2026-12-07", "category": "食材", "food_type": food_type, "item": food_type,
        "quantity": "1", "unit": "斤", "amount": "10.00", "supplier": "村东", "buyer": "李秀兰",
    }  # fmt: skip


def key_food(books: Books) -> str:
    return next(r.text for r in reminders(books, NOW.date()) if r.key == "key_food")


def test_reminders_read_the_books_once_until_they_change(store: Store, tmp_path: Path) -> None:
    key = generate_device_key(tmp_path / "device.key")
    books = Books(store, "dev-1", lambda: key.sign_record)
    reads: list[int] = []
    effective = books.effective

    def counted(kinds: object = None) -> list[Entry]:
        reads.append(1)
        return effective(kinds)  # type: ignore[arg-type]

    books.effective = counted  # type: ignore[method-assign]
    meat = books.add("expense", purchase("肉"), caregiver_id="c1", now=NOW)
    assert key_food(books) == "近7天没有采购：蛋、奶、蔬菜"
    for _ in range(5):  # polls while nothing changes
        assert key_food(books) == "近7天没有采购：蛋、奶、蔬菜"
    assert len(reads) == 1

    books.add("expense", purchase("蛋"), caregiver_id="c1", now=NOW)
    assert key_food(books) == "近7天没有采购：奶、蔬菜"
    books.void(meat.entry_id, "记错了", caregiver_id="c1", now=NOW)
    assert key_food(books) == "近7天没有采购：肉、奶、蔬菜"
    assert len(reads) == 3
    # A Books of its own per request (as /api/statusbar makes) shares what was read.
    other = Books(store, "dev-1", lambda: key.sign_record)
    other.effective = counted  # type: ignore[method-assign]
    assert key_food(other) == "近7天没有采购：肉、奶、蔬菜"
    assert len(reads) == 3
