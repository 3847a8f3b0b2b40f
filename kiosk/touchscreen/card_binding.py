"""Card binding from the touchscreen: the caregiver chooses an elder, then taps a new card.

`CardBinding.arm()` opens a short binding window (`BIND_WINDOW_S`) for one elder. The card tap
handler (kiosk.runtime.daemon) calls `try_bind()` before check-in: while armed, the next tap
is used for binding and never checks anybody in. An unbound card is bound to the elder and the
window closes; a card already bound (to anybody) is refused with a clear message and the
window stays open for the right card. Every attempt is an audit event; the result is
published on the event bus as kind "card_bind" (the binding page shows it).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from kiosk.touchscreen.masking import mask_name
from models.db import Store
from models.tables import AuditEvent, Card, Elder

BIND_WINDOW_S = 60


@dataclass(frozen=True)
class PendingBinding:
    elder_id: str
    elder_name: str
    caregiver_id: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class BindResult:
    ok: bool
    outcome: str  # bound | already_bound | unknown_elder | storage_error
    elder_id: str
    card_uid: str
    message: str  # Chinese, for the caregiver
    done: bool  # the binding window is closed

    def as_event(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": self.outcome,
            "elder_id": self.elder_id,
            "card_uid": self.card_uid,
            "message": self.message,
            "done": self.done,
        }


class CardBinding:
    """The short-lived binding mode, shared by the web page and the reader threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bind_lock = threading.Lock()
        self._pending: PendingBinding | None = None
        self.last: BindResult | None = None

    def arm(
        self, store: Store, elder_id: str, caregiver_id: str, now: dt.datetime
    ) -> PendingBinding | None:
        """Open the window for an elder on the roster (None if there is no such elder)."""
        with store.read() as s:
            elder = s.get(Elder, elder_id)
            if elder is None:
                return None
            name = elder.name
        pending = PendingBinding(
            elder_id, name, caregiver_id, now + dt.timedelta(seconds=BIND_WINDOW_S)
        )
        with self._lock:
            self._pending, self.last = pending, None
        return pending

    def cancel(self) -> None:
        with self._lock:
            self._pending = None

    def pending(self, now: dt.datetime) -> PendingBinding | None:
        with self._lock:
            if self._pending is not None and now >= self._pending.expires_at:
                self._pending = None
            return self._pending

    def try_bind(self, store: Store, uid: str, now: dt.datetime) -> BindResult | None:
        """For the tap handler: bind `uid` if a window is open, else None (check in as usual).
        Taps on two readers at once are serialised: only one card is bound per window."""
        with self._bind_lock:
            pending = self.pending(now)
            if pending is None:
                return None
            return self.bind(store, pending, uid, now)

    def bind(self, store: Store, pending: PendingBinding, uid: str, now: dt.datetime) -> BindResult:
        """Bind `uid` (already in the roster's form) to the pending elder, unless it is bound."""
        detail: dict[str, Any] = {
            "card": uid,
            "elder": pending.elder_id,
            "caregiver": pending.caregiver_id,
        }
        try:
            with store.write() as s:
                existing = s.get(Card, uid)
                if existing is not None:
                    owner = s.get(Elder, existing.elder_id)
                    who = mask_name(owner.name) if owner else existing.elder_id
                    same = existing.elder_id == pending.elder_id
                    message = (
                        f"这张卡已经绑定给{who}了，不用再绑"
                        if same
                        else f"这张卡已经绑定给{who}，不能再绑定。请换一张新卡"
                    )
                    result = BindResult(
                        False, "already_bound", pending.elder_id, uid, message, done=same
                    )
                    detail["owner"] = existing.elder_id
                    s.add(AuditEvent(at=now, kind="card_bind_refused", detail=json.dumps(detail)))
                elif s.get(Elder, pending.elder_id) is None:
                    result = BindResult(
                        False, "unknown_elder", pending.elder_id, uid, "花名册中没有这位老人", True
                    )
                else:
                    s.add(Card(uid=uid, elder_id=pending.elder_id, bound_at=now))
                    s.add(AuditEvent(at=now, kind="card_bound", detail=json.dumps(detail)))
                    result = BindResult(
                        True,
                        "bound",
                        pending.elder_id,
                        uid,
                        f"已把卡 {uid} 绑定给{pending.elder_name}",
                        done=True,
                    )
        except SQLAlchemyError as exc:
            result = BindResult(
                False, "storage_error", pending.elder_id, uid, f"保存失败：{exc}", False
            )
        with self._lock:
            if result.done and self._pending == pending:
                self._pending = None
            self.last = result
        return result
