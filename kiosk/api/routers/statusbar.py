"""GET /api/statusbar: the check-in view's status bar items and gentle reminders (everyone).

Readers, camera, uploads and clock from the kiosk's health; reminders from the safety ledgers
(today's 留样 not yet logged, this week's inspection due) and from the books (肉蛋奶蔬菜 not
bought for a week, 公示 not posted, health certificates, open hazards). Meal fees owed are
never shown here: this screen faces the room.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kiosk.api.deps import ServicesDep
from kiosk.api.routers.books import books_of
from kiosk.touchscreen.books import reminders as book_reminders
from kiosk.touchscreen.ledgers import today_status
from kiosk.touchscreen.statusbar import status_bar

router = APIRouter(prefix="/api", tags=["statusbar"])


@router.get("/statusbar")
def api_statusbar(services: ServicesDep) -> dict[str, Any]:
    now = services.now()
    first_meal = min((s.start for s in services.config.slots_for("meal")), default=None)
    try:
        reminders = today_status(services.store, now, first_meal).reminders
        books = [r.text for r in book_reminders(books_of(services), now.date())]
    except Exception:  # the status bar must show even when the database does not answer
        reminders, books = [], []
    # The books' reminders (肉蛋奶蔬菜, 公示, 健康证, hazards) link to /books, apart from the
    # ledgers' (/safety).
    return {**status_bar(services.health(), now, reminders), "book_reminders": books}
