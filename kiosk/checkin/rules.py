"""The check-in rules: who may be served what, when, and only once.

`CheckinService.check_in` turns an identified person (card, face or caregiver) into a typed
`CheckinResult`. An accepted record, its outbox row and its hash-chain link are written in one
transaction and committed (synchronous=FULL) before the result is returned or published, so
nothing the elder saw as "签到成功" can be lost. Expected outcomes — duplicate, refused — are
results, not exceptions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from kiosk.checkin.events import EventBus
from kiosk.checkin.schedule import SLOT_LABELS, SlotWindow, current_or_next, open_slot
from kiosk.config import KioskConfig
from models.chain import SignatureCheck
from models.db import Store
from models.records import RecordSigner, append_record
from models.tables import AuditEvent, Card, Elder, MealRecord
from sync.county_cards import lookup, lookup_elder
from sync.evidence import EvidenceMonitor, EvidenceReport
from sync.signing import PlatformVerifier

log = logging.getLogger(__name__)


class Method(StrEnum):
    CARD = "card"
    FACE = "face"
    CARD_FACE = "card+face"
    MANUAL = "manual"


METHOD_LABELS = {"card": "刷卡", "face": "刷脸", "card+face": "刷卡", "manual": "人工"}


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


class Refusal(StrEnum):
    INVALID_CARD = "invalid_card"
    UNKNOWN_CARD = "unknown_card"
    UNKNOWN_ELDER = "unknown_elder"
    NOT_ELIGIBLE = "not_eligible"
    NO_AGREEMENT = "no_agreement"
    OUTSIDE_HOURS = "outside_hours"
    STORAGE_FULL = "storage_full"
    STORAGE_ERROR = "storage_error"
    FACE_REQUIRED = "face_required"  # card_evidence: require, and the holder's face not seen
    FACE_UNKNOWN = "face_unknown"  # a face nobody on the roster matches: no record
    FACE_AMBIGUOUS = "face_ambiguous"  # two elders too close to tell apart: no record
    LIVENESS_FAILED = "liveness_failed"  # no blink (turn) seen: maybe a photo; no record
    # The device key cannot be loaded: a record nobody can prove the daemon wrote is no evidence.
    SIGNING_UNAVAILABLE = "signing_unavailable"
    # The chain is shorter than the platform acknowledged (records deleted): recording now would
    # serve the same elders again and fork the evidence; a technician restores it first.
    CHAIN_ROLLED_BACK = "chain_rolled_back"


# What the elder reads and hears. Short, plain words; the name first so he knows it is his.
REFUSAL_MESSAGES = {
    Refusal.INVALID_CARD: "无法识别卡片，请重新刷卡",
    Refusal.UNKNOWN_CARD: "未登记的卡，请找护理员",
    Refusal.UNKNOWN_ELDER: "查无此人，请找护理员",
    Refusal.NOT_ELIGIBLE: "暂不能享受助餐服务，请找护理员",
    Refusal.NO_AGREEMENT: "尚未签订助餐协议，请找护理员",
    Refusal.OUTSIDE_HOURS: "现在不是服务时间",
    Refusal.STORAGE_FULL: "存储空间已满，请联系管理员",
    Refusal.STORAGE_ERROR: "系统故障，请联系管理员",
    Refusal.FACE_REQUIRED: "请正对摄像头再刷卡",
    Refusal.FACE_UNKNOWN: "未能识别，请刷卡",
    Refusal.FACE_AMBIGUOUS: "无法确认身份，请刷卡",
    Refusal.LIVENESS_FAILED: "未通过活体检测，请刷卡",
    Refusal.SIGNING_UNAVAILABLE: "设备密钥不可用，暂停签到，请联系技术员",
    Refusal.CHAIN_ROLLED_BACK: "本机记录被删改，暂停签到，请联系技术员",
}


@dataclass(frozen=True)
class StorageFailure:
    """The last check-in that could not be stored, until one is stored again (for health)."""

    refusal: Refusal  # STORAGE_FULL or STORAGE_ERROR
    detail: str  # SQLite's words
    at: dt.datetime
    free_bytes: int | None  # free space on the data filesystem when it failed
    read_only: bool  # the filesystem was mounted read-only when it failed


@dataclass(frozen=True)
class CheckinRequest:
    """Who is checking in and how; exactly one of `card_uid` and `elder_id` is set."""

    method: Method
    service: str = "meal"
    card_uid: str | None = None  # in the roster's form
    elder_id: str | None = None
    reader: str | None = None
    distance: float | None = None
    margin: float | None = None
    liveness: str | None = None
    flags: frozenset[str] = frozenset()
    caregiver_id: str | None = None
    reason: str | None = None  # why a manual check-in
    # card_evidence "require": refuse unless the card holder's face was seen (method card+face)
    require_face: bool = False

    def __post_init__(self) -> None:
        if (self.card_uid is None) == (self.elder_id is None):
            raise ValueError("a check-in names either a card or an elder")


@dataclass(frozen=True)
class CheckinResult:
    outcome: Outcome
    message: str  # Chinese, for the screen and the speaker
    method: Method
    service: str
    at: dt.datetime
    elder_id: str | None = None
    elder_name: str | None = None
    slot: str | None = None
    service_date: dt.date | None = None
    record_id: str | None = None
    seq: int | None = None
    refusal: Refusal | None = None
    first_at: dt.datetime | None = None  # for a duplicate: when he was served
    card_uid: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED

    def as_event(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("at", "first_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["service_date"] = self.service_date.isoformat() if self.service_date else None
        data["method_label"] = METHOD_LABELS[self.method]
        return data


def _filesystem_state(path: Path) -> tuple[int | None, bool]:
    """(bytes free to unprivileged users, mounted read-only) of the filesystem holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None, False
    return st.f_bavail * st.f_frsize, bool(st.f_flag & os.ST_RDONLY)


def platform_verifier(config: KioskConfig) -> PlatformVerifier | None:
    """The platform's key (platform.public_key) that signs receipts and checkpoint acks."""
    if not config.platform.public_key:
        return None
    try:
        return PlatformVerifier.from_b64(config.platform.public_key)
    except ValueError as exc:
        log.error("platform.public_key unusable, receipts cannot be checked: %s", exc)
        return None


class CheckinService:
    def __init__(
        self,
        config: KioskConfig,
        store: Store,
        bus: EventBus | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        signer: RecordSigner | None = None,
        signature_check: SignatureCheck | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        # Signs each record in its inserting transaction (the device key's sign_record). None:
        # loaded from the data directory's credentials at the first check-in (see _signer).
        self._record_signer = signer
        # Why records cannot be signed (device key unusable), for health and doctor.
        self.signing_problem: str | None = None
        # The chain, signatures and outbox re-checked (check_evidence); health shows the report.
        self.evidence = EvidenceMonitor(store, signature_check, platform_verifier(config))
        # Why recording is suspended (sync/rollback.py); None = not rolled back. Checked at the
        # first check-in, by every evidence run, and again at each refused attempt.
        self.rolled_back: str | None = None
        self._rollback_checked = False
        self._verified_acks: set[int] = set()  # checkpoint acks whose signature verified
        self._clock = clock or (lambda: dt.datetime.now(config.site.tz))
        # Set by the daemon from kiosk.runtime.timesync: records made on a clock known to be
        # wrong say so.
        self.clock_unsynced = False
        # Why the last write failed, until a write succeeds again (health and metrics show it).
        self.storage_failure: StorageFailure | None = None

    def now(self) -> dt.datetime:
        return self._clock()

    def check_in(self, req: CheckinRequest) -> CheckinResult:
        """Apply the rules and, if accepted, durably record the service."""
        now = self.now()
        if self._suspended_by_rollback():
            result = self._refused(req, now, Refusal.CHAIN_ROLLED_BACK)
            self._audit_safely(now, str(Refusal.CHAIN_ROLLED_BACK), {"why": self.rolled_back})
            self._publish(result)
            return result
        signer = self._signer()
        if signer is None:
            result = self._refused(req, now, Refusal.SIGNING_UNAVAILABLE)
            self._audit_safely(now, str(Refusal.SIGNING_UNAVAILABLE), {"why": self.signing_problem})
            self._publish(result)
            return result
        try:
            with self.store.write() as session:
                result = self._decide_and_record(session, req, now, signer)
            self.storage_failure = None
        except IntegrityError as exc:
            # The UNIQUE constraint is the last word on "once per slot"; the lookup in
            # _decide_and_record normally answers first.
            log.warning("unique constraint refused a second record: %s", exc.orig)
            result = self._result(req, now, Outcome.DUPLICATE, "您已签到")
        except OperationalError as exc:
            result = self._storage_failure(req, now, exc)
        except SQLAlchemyError as exc:
            log.exception("check-in could not be stored")
            result = self._storage_failure(req, now, exc)
        self._publish(result)
        return result

    def _suspended_by_rollback(self) -> bool:
        """Before every check-in: the full check once (and at each refused tap, so a recovery
        clears it at once), else the cheap one against the newest checkpoint ack, which the
        checkpoint push may have just fetched from the platform."""
        from sync.rollback import checkpoint_problem, rollback_problem

        try:
            if self._rollback_checked and self.rolled_back is None:
                with self.store.read() as session:
                    self.rolled_back = checkpoint_problem(
                        session, self.evidence.platform, self._verified_acks
                    )
            else:
                self.rolled_back = rollback_problem(
                    self.store, self.evidence.platform, self._verified_acks
                )
        except SQLAlchemyError:
            log.exception("rollback check failed")  # the write below reports storage errors
            return False
        self._rollback_checked = True
        if self.rolled_back:
            log.error("check-in suspended: %s", self.rolled_back)
        return self.rolled_back is not None

    def evidence_problems(self) -> list[str]:
        """What health shows the caregiver about the local evidence (Chinese)."""
        problems = []
        if self.rolled_back:
            problems.append("本机记录被删改（少于平台已确认的记录），已暂停签到，请联系技术员恢复")
        if self.signing_problem:
            problems.append("设备密钥不可用，暂停签到，请联系技术员")
        if len(self.evidence.report.problems) > (1 if self.evidence.report.rolled_back else 0):
            problems.append("本机记录的链或发件箱不一致，请联系技术员")
        return problems

    def check_evidence(self) -> EvidenceReport:
        """Re-check the local chain, signatures and outbox (full once, then what is new)."""
        self._signer()  # loads the key, which also verifies the signatures
        report = self.evidence.run()
        self.rolled_back, self._rollback_checked = report.rolled_back, True
        return report

    def start_evidence_checks(
        self, stop: threading.Event, interval_s: float = 60.0
    ) -> threading.Thread:
        """At start and then every `interval_s`, in its own thread (a full check of a large
        database takes seconds and must not delay a tap or the watchdog)."""

        self.evidence.pause_s = 0.02  # 2,000 records per chunk, then the GIL is free

        def loop() -> None:
            while True:
                try:
                    self.check_evidence()
                except Exception:  # a failing check must not end the checks
                    log.exception("evidence check failed")
                if stop.wait(interval_s):
                    return

        thread = threading.Thread(target=loop, name="evidence", daemon=True)
        thread.start()
        return thread

    def refuse_face(
        self, refusal: Refusal, distance: float | None = None, margin: float | None = None
    ) -> CheckinResult:
        """A face that cannot be checked in (unknown, ambiguous, not live): the screen says
        "请刷卡"; nothing is written, and no name is shown for a face nobody was sure of."""
        result = CheckinResult(
            outcome=Outcome.REFUSED,
            message=REFUSAL_MESSAGES[refusal],
            method=Method.FACE,
            service="meal",
            at=self.now(),
            refusal=refusal,
        )
        log.info("face refused (%s): distance %s, margin %s", refusal, distance, margin)
        self._publish(result)
        return result

    def refuse_invalid_card(self, raw_uid: str, reader: str, problem: str) -> CheckinResult:
        """A card whose number could not be read or converted; audited, never silent."""
        now = self.now()
        req = CheckinRequest(Method.CARD, card_uid=raw_uid, reader=reader)
        self._audit_safely(now, "invalid_card", {"raw": raw_uid, "reader": reader, "why": problem})
        result = self._refused(req, now, Refusal.INVALID_CARD)
        self._publish(result)
        return result

    # ------------------------------------------------------------------ internals

    def record_signer(self) -> RecordSigner | None:
        """The device key's signer, for other append-only entries (the village's books)."""
        return self._signer()

    def _signer(self) -> RecordSigner | None:
        """The device key's record signer; loaded once, retried while it is unusable."""
        if self._record_signer is None:
            from sync.signing import DeviceKeyError, record_signing_key

            try:
                key = record_signing_key(self.store.db_path.parent)
                self._record_signer = key.sign_record
                self.evidence.signature_ok = key.record_ok
                self.signing_problem = None
            except (DeviceKeyError, OSError) as exc:
                self.signing_problem = f"device key: {exc}"
                log.error("check-in refused, records cannot be signed: %s", exc)
        return self._record_signer

    def _decide_and_record(
        self, session: Session, req: CheckinRequest, now: dt.datetime, signer: RecordSigner
    ) -> CheckinResult:
        elder = self._identify(session, req)
        visitor = None
        if self.config.roaming.accept_visitors and self._maybe_visitor(elder, req):
            elder, visitor = self._visitor(session, req, now)
            if visitor is not None:
                req = replace(req, flags=req.flags | {"visitor"})
        if elder is None:
            unknown = Refusal.UNKNOWN_CARD if req.card_uid else Refusal.UNKNOWN_ELDER
            self._audit(session, now, unknown, req, None)
            return self._refused(req, now, unknown)

        window = open_slot(self.config, req.service, now)
        if window is None:
            self._audit(session, now, Refusal.OUTSIDE_HOURS, req, elder)
            return self._refused(req, now, Refusal.OUTSIDE_HOURS, elder, self._hours_hint(now, req))
        refusal = None if visitor is not None else self._refusal_for(elder, req)
        if refusal is not None:
            self._audit(session, now, refusal, req, elder)
            return self._refused(req, now, refusal, elder)

        earlier = session.scalar(
            select(MealRecord.checked_in_at).where(
                MealRecord.elder_id == elder.elder_id,
                MealRecord.service == req.service,
                MealRecord.service_date == window.service_date,
                MealRecord.slot == window.slot,
            )
        )
        if earlier is not None:
            label = SLOT_LABELS.get(window.slot, window.slot)
            message = f"{elder.name}，您{label}已签到（{earlier.astimezone(now.tzinfo):%H:%M}）"
            return self._result(
                req, now, Outcome.DUPLICATE, message, elder, window, first_at=earlier
            )

        record = append_record(
            session,
            signer=signer,
            device_id=self.config.device.device_id,
            elder_id=elder.elder_id,
            service=req.service,
            slot=window.slot,
            service_date=window.service_date,
            checked_in_at=now,
            method=str(req.method),
            card_uid=req.card_uid,
            reader=req.reader,
            distance=req.distance,
            margin=req.margin,
            liveness=req.liveness,
            flags=",".join(
                sorted(req.flags | ({"clock_unsynced"} if self.clock_unsynced else set()))
            ),
            caregiver_id=req.caregiver_id,
            reason=req.reason,
        )
        welcome = "请用餐" if req.service == "meal" else "助洁登记成功"
        # A visitor is named as one, so the caregiver sees at once who is not on the roster.
        badge = f"外点老人 · 来自{visitor}，" if visitor is not None else ""
        return self._result(
            req,
            now,
            Outcome.ACCEPTED,
            f"{elder.name}，{badge}签到成功，{welcome}",
            elder,
            window,
            record_id=record.record_id,
            seq=record.seq,
        )

    def _refusal_for(self, elder: Elder, req: CheckinRequest) -> Refusal | None:
        if elder.status != "active":
            return Refusal.NOT_ELIGIBLE
        if self.config.site.require_agreement and not elder.agreement_signed:
            return Refusal.NO_AGREEMENT
        if req.require_face and req.method is not Method.CARD_FACE:
            return Refusal.FACE_REQUIRED
        return None

    @staticmethod
    def _maybe_visitor(elder: Elder | None, req: CheckinRequest) -> bool:
        """A card not on our roster, or a caregiver's manual check-in of an elder who is not
        on it (or only as a visitor seen before): look for him on the county list."""
        if req.card_uid is not None:
            return elder is None
        return req.method is Method.MANUAL and (elder is None or elder.status == "visitor")

    def _visitor(
        self, session: Session, req: CheckinRequest, now: dt.datetime
    ) -> tuple[Elder | None, str | None]:
        """(the elder, his home point's name) for a card of another point on the signed county
        list, or for a manual check-in of an elder of another point on it (his card forgotten).
        He is kept as a local elder row with status "visitor" (the meal record's foreign
        key needs one; a roster apply only upserts the elders it lists, so it never deletes
        him, and if his point ever becomes this one, the roster's row takes over). A visitor
        row whose elder has left the list is no longer served as one."""
        if req.card_uid is not None:
            found = lookup(self.store, req.card_uid)
        else:
            assert req.elder_id is not None
            found = lookup_elder(self.store, req.elder_id)
        if found is None:
            return None, None
        elder = session.get(Elder, found.elder_id)
        if elder is None:
            elder = Elder(
                elder_id=found.elder_id,
                name=found.name,
                status="visitor",
                agreement_signed=True,  # the agreement is held by his home point
                updated_at=now,
            )
            session.add(elder)
        elif elder.status != "visitor":
            return None, None  # on our roster without this card: our roster decides
        else:
            elder.name = found.name
        return elder, found.home_name

    def _identify(self, session: Session, req: CheckinRequest) -> Elder | None:
        if req.card_uid is not None:
            return session.scalar(select(Elder).join(Card).where(Card.uid == req.card_uid))
        return session.get(Elder, req.elder_id)

    def _hours_hint(self, now: dt.datetime, req: CheckinRequest) -> str:
        window = current_or_next(self.config, req.service, now)
        base = REFUSAL_MESSAGES[Refusal.OUTSIDE_HOURS]
        if window is None:
            return base
        return f"{base}（{SLOT_LABELS.get(window.slot, window.slot)} {window.hours}）"

    def _result(
        self,
        req: CheckinRequest,
        now: dt.datetime,
        outcome: Outcome,
        message: str,
        elder: Elder | None = None,
        window: SlotWindow | None = None,
        **extra: Any,
    ) -> CheckinResult:
        return CheckinResult(
            outcome=outcome,
            message=message,
            method=req.method,
            service=req.service,
            at=now,
            elder_id=elder.elder_id if elder else req.elder_id,
            elder_name=elder.name if elder else None,
            slot=window.slot if window else None,
            service_date=window.service_date if window else None,
            card_uid=req.card_uid,
            flags=tuple(sorted(req.flags)),
            **extra,
        )

    def _refused(
        self,
        req: CheckinRequest,
        now: dt.datetime,
        refusal: Refusal,
        elder: Elder | None = None,
        message: str | None = None,
    ) -> CheckinResult:
        text = message or REFUSAL_MESSAGES[refusal]
        if elder is not None:
            text = f"{elder.name}，{text}"
        return self._result(req, now, Outcome.REFUSED, text, elder, refusal=refusal)

    def _storage_failure(
        self, req: CheckinRequest, now: dt.datetime, exc: SQLAlchemyError
    ) -> CheckinResult:
        text = str(getattr(exc, "orig", exc)).lower()
        full = "full" in text or "no space" in text
        refusal = Refusal.STORAGE_FULL if full else Refusal.STORAGE_ERROR
        log.error("check-in refused, storage failed: %s", text)
        free, read_only = _filesystem_state(self.store.db_path.parent)
        self.storage_failure = StorageFailure(refusal, text, now, free, read_only)
        if not full:  # read-only or I/O error: the next check-in opens the file afresh
            self.store.reopen()
        return self._refused(req, now, refusal)

    def _audit(
        self,
        session: Session,
        now: dt.datetime,
        refusal: Refusal,
        req: CheckinRequest,
        elder: Elder | None,
    ) -> None:
        detail = {
            "method": str(req.method),
            "service": req.service,
            "card_uid": req.card_uid,
            "elder_id": elder.elder_id if elder else req.elder_id,
            "reader": req.reader,
        }
        if req.flags:
            detail["flags"] = ",".join(sorted(req.flags))
        session.add(AuditEvent(at=now, kind=str(refusal), detail=json.dumps(detail)))
        log.info("check-in refused (%s): %s", refusal, detail)

    def _audit_safely(self, now: dt.datetime, kind: str, detail: dict[str, Any]) -> None:
        log.info("%s: %s", kind, detail)
        try:
            with self.store.write() as session:
                session.add(AuditEvent(at=now, kind=kind, detail=json.dumps(detail)))
        except SQLAlchemyError:
            log.exception("could not write audit event %s", kind)

    def _publish(self, result: CheckinResult) -> None:
        if self.bus is not None:
            self.bus.publish("checkin", result.as_event())
