"""Face templates at rest: AES-GCM encrypted encodings, the key outside the database.

China's 2025 face-recognition measures ask for on-device storage and encryption of face data.
A template row holds `nonce (12 bytes) || ciphertext || tag` of the 128 float32 values, with the
elder id as associated data, so a blob copied onto another elder's row does not decrypt.

The key (32 bytes) comes, in this order, from:
1. `KIOSK_FACE_KEY` or the systemd credential `$CREDENTIALS_DIRECTORY/face-key`
   (`load_secret("face-key")`), as base64 or 64 hex digits;
2. `<data-dir>/keys/face.key` (base64), created with mode 0600 on first use.
It is never written into the database; each row records only the key's fingerprint (`key_id`),
so a wrong key is reported as such instead of as corrupt data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import delete, func, select, update

from kiosk.config import load_secret
from kiosk.secret_files import SecretFileError, read_private_file
from models.db import Store
from models.tables import AuditEvent, FaceTemplate

log = logging.getLogger(__name__)

ENCODING_DIM = 128
KEY_FILE = Path("keys") / "face.key"
SECRET_NAME = "face-key"
NONCE_BYTES = 12

# Templates that follow ageing (issue 15, point 5). After a confident, live-checked face
# check-in the worker may keep the frame's encoding as a new template of that elder: only when
# it is far under the threshold (it is the elder) yet not close to any stored template (it
# adds a view the elder's templates lack), with a large margin to every other elder, at most
# once a day per elder, and at most ADAPT_CAP such templates per elder (the oldest is retired).
# Enrolled templates (consent, caregiver present) are never retired by this: they anchor the
# identity, so the learned ones cannot walk it off towards somebody else. Retired rows stay,
# inactive, so every change can be reverted (`kiosk face revert`); consent withdrawal
# (delete_elder) deletes them with the rest.
ADAPT_SOURCE = "adapt"
RETIRED_PREFIX = "retired:"
ADAPT_CAP = 3
ADAPT_MIN_NOVELTY = 0.15  # distance to the elder's nearest template: at least this...
ADAPT_MAX_DISTANCE = 0.30  # ...and at most this (threshold 0.45; genuine photos 0.07-0.44)
ADAPT_MIN_MARGIN = 0.25  # runner-up elder at least this much farther (impostors >= 0.61)
ADAPT_MIN_INTERVAL = dt.timedelta(hours=20)  # once a day per elder
ADAPT_WHO = "face_worker"


class FaceKeyError(Exception):
    """The face key is missing, malformed, or not the key the templates were encrypted with."""


def _parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise FaceKeyError(f"face key from {where} is not 32 bytes as base64 or 64 hex digits")
    return raw


@dataclass(frozen=True)
class FaceKey:
    raw: bytes
    where: str  # for messages: which source it came from

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"haolinju-face-key:" + self.raw).hexdigest()[:16]

    @classmethod
    def load(cls, data_dir: Path, *, create: bool = True) -> FaceKey:
        """The configured key (credential/env), else the key file, created if missing."""
        secret = load_secret(SECRET_NAME)
        if secret:
            return cls(_parse_key(secret, "KIOSK_FACE_KEY / face-key credential"), "credential")
        path = data_dir / KEY_FILE
        if path.exists() or path.is_symlink():
            # Like every secret: never through a symlink, never readable by others (a key
            # others could read is no protection for the templates: refused, not "fixed").
            try:
                text = read_private_file(path).decode("ascii", "replace")
            except SecretFileError as exc:
                raise FaceKeyError(str(exc)) from None
            return cls(_parse_key(text, str(path)), str(path))
        if not create:
            raise FaceKeyError(f"no face key: set KIOSK_FACE_KEY or create {path}")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        raw = secrets.token_bytes(32)
        # O_EXCL: two processes starting at once cannot both write a different key;
        # O_NOFOLLOW: a link planted at the path is not written through.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return cls.load(data_dir, create=False)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(base64.b64encode(raw).decode("ascii") + "\n")
        log.info("created face template key %s", path)
        return cls(raw, str(path))


def _aad(elder_id: str) -> bytes:
    return f"face_template:v1:{elder_id}".encode()


def encrypt(key: FaceKey, elder_id: str, encoding: ArrayLike) -> bytes:
    vector = np.asarray(encoding, dtype="<f4").reshape(ENCODING_DIM)
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key.raw).encrypt(nonce, vector.tobytes(), _aad(elder_id))


def decrypt(key: FaceKey, elder_id: str, blob: bytes) -> NDArray[np.float32]:
    try:
        plain = AESGCM(key.raw).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(elder_id))
    except InvalidTag:
        raise FaceKeyError(
            f"a face template of elder {elder_id} does not decrypt with the face key from "
            f"{key.where}: the key is wrong or the row was altered"
        ) from None
    return np.frombuffer(plain, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class StoredTemplate:
    id: int
    elder_id: str
    encoding: NDArray[np.float32]
    source: str = ""  # file | camera | screen | adapt, "+aug" for augmented views
    detector: str = "hog"  # whose face box it was encoded from (face.detector)


class TemplateStore:
    """Face templates in the kiosk database; all writes through `Store.write()`."""

    def __init__(self, store: Store, key: FaceKey) -> None:
        self.store = store
        self.key = key

    def _check_key(self, rows: list[FaceTemplate]) -> None:
        other = {r.key_id for r in rows} - {self.key.key_id}
        if other:
            raise FaceKeyError(
                f"face templates were encrypted with key {', '.join(sorted(other))}, but the "
                f"face key from {self.key.where} is {self.key.key_id}: restore the original "
                "key (KIOSK_FACE_KEY, the face-key credential or <data-dir>/keys/face.key) "
                "or re-enrol"
            )

    def _decode(self, rows: list[FaceTemplate]) -> list[StoredTemplate]:
        self._check_key(rows)
        return [
            StoredTemplate(
                r.id, r.elder_id, decrypt(self.key, r.elder_id, r.encoding), r.source, r.detector
            )
            for r in rows
        ]

    def add(
        self,
        elder_id: str,
        encoding: ArrayLike,
        *,
        quality: float,
        face_px: int,
        consent_ref: str,
        at: dt.datetime,
        source: str = "file",
        detector: str = "hog",
    ) -> int:
        row = FaceTemplate(
            elder_id=elder_id,
            encoding=encrypt(self.key, elder_id, encoding),
            key_id=self.key.key_id,
            quality=float(quality),
            face_px=int(face_px),
            source=source,
            enrolled_at=at,
            consent_ref=consent_ref,
            detector=detector,
        )
        with self.store.write() as session:
            session.add(row)
            session.flush()
            return row.id

    def all(self) -> list[StoredTemplate]:
        """The active templates (retired ones are kept only for `revert`)."""
        with self.store.read() as session:
            rows = list(session.scalars(_active(select(FaceTemplate)).order_by(FaceTemplate.id)))
        return self._decode(rows)

    def for_elder(self, elder_id: str) -> list[StoredTemplate]:
        with self.store.read() as session:
            rows = list(
                session.scalars(
                    _active(select(FaceTemplate)).where(FaceTemplate.elder_id == elder_id)
                )
            )
        return self._decode(rows)

    def count(
        self, elder_id: str | None = None, augmented: bool = True, detector: str | None = None
    ) -> int:
        """Active templates; `augmented=False` leaves out the derived views of enrolment
        images (source `...+aug`, kiosk.face.augment), which the per-elder limit ignores;
        `detector` counts only that detector's."""
        query = _active(select(func.count()).select_from(FaceTemplate))
        if elder_id is not None:
            query = query.where(FaceTemplate.elder_id == elder_id)
        if not augmented:
            query = query.where(FaceTemplate.source.not_like("%+aug"))
        if detector is not None:
            query = query.where(FaceTemplate.detector == detector)
        with self.store.read() as session:
            return int(session.scalar(query) or 0)

    def fingerprint(self) -> tuple[int, int]:
        """Changes whenever a template is added, deleted, retired or restored (ids are never
        reused)."""
        with self.store.read() as session:
            count, total = session.execute(
                _active(
                    select(func.count(FaceTemplate.id), func.coalesce(func.sum(FaceTemplate.id), 0))
                )
            ).one()
        return int(count), int(total)

    def delete_elder(self, elder_id: str) -> int:
        """Consent withdrawn: delete every template of the elder. Returns how many."""
        with self.store.write() as session:
            result = session.execute(delete(FaceTemplate).where(FaceTemplate.elder_id == elder_id))
            # Session.execute is typed as returning Result; for a DELETE it is a CursorResult.
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- templates that follow ageing --------------------------------------------------------
    def adapt(
        self,
        elder_id: str,
        encoding: ArrayLike,
        *,
        distance: float,
        margin: float,
        at: dt.datetime,
        detector: str = "hog",
    ) -> Adapted | None:
        """Keep `encoding` (a live-checked face check-in of `elder_id`, at `distance` from the
        elder's nearest template and `margin` to any other elder) as a new template if the
        rules above allow it; retire the elder's oldest learned template beyond ADAPT_CAP.
        Recorded in audit_event (`face_template_adapted`), in the same transaction."""
        if not ADAPT_MIN_NOVELTY <= distance <= ADAPT_MAX_DISTANCE or margin < ADAPT_MIN_MARGIN:
            return None
        vector = np.asarray(encoding, dtype=np.float32)
        with self.store.write() as session:
            rows = list(
                session.scalars(
                    _active(select(FaceTemplate))
                    .where(FaceTemplate.elder_id == elder_id, FaceTemplate.detector == detector)
                    .order_by(FaceTemplate.enrolled_at, FaceTemplate.id)
                )
            )
            if not rows:
                return None
            self._check_key(rows)
            stored = [decrypt(self.key, elder_id, r.encoding) for r in rows]
            # The caller's distance is to the matcher's copy; re-check against the store.
            nearest = min(float(np.linalg.norm(e - vector)) for e in stored)
            if nearest < ADAPT_MIN_NOVELTY or nearest > ADAPT_MAX_DISTANCE:
                return None
            learned = [r for r in rows if r.source == ADAPT_SOURCE]
            if learned and at - _aware(learned[-1].enrolled_at, at) < ADAPT_MIN_INTERVAL:
                return None
            retired = learned[: max(0, len(learned) + 1 - ADAPT_CAP)]
            for r in retired:
                r.source = RETIRED_PREFIX + r.source
            row = FaceTemplate(
                elder_id=elder_id,
                encoding=encrypt(self.key, elder_id, vector),
                key_id=self.key.key_id,
                quality=0.0,  # a camera frame of a check-in: no enrolment photo measures
                face_px=0,
                source=ADAPT_SOURCE,
                enrolled_at=at,
                consent_ref=rows[0].consent_ref,  # the consent that covers the elder's face
                detector=detector,
            )
            session.add(row)
            session.flush()
            result = Adapted(elder_id, row.id, [r.id for r in retired], nearest, margin)
            session.add(
                AuditEvent(
                    at=at,
                    kind="face_template_adapted",
                    detail=json.dumps(
                        {
                            "who": ADAPT_WHO,
                            "elder": elder_id,
                            "distance": round(nearest, 4),
                            "margin": round(margin, 4),
                            "added": row.id,
                            "retired": result.retired,
                        }
                    ),
                )
            )
        log.info(
            "face template %d learned for %s (distance %.3f, margin %.3f); retired %s",
            result.template_id, elder_id, nearest, margin, result.retired or "none",
        )  # fmt: skip
        return result

    def history(self, elder_id: str) -> list[TemplateRow]:
        """Every template row of the elder, active and retired, oldest first (no encodings)."""
        with self.store.read() as session:
            rows = session.scalars(
                select(FaceTemplate)
                .where(FaceTemplate.elder_id == elder_id)
                .order_by(FaceTemplate.enrolled_at, FaceTemplate.id)
            )
            return [
                TemplateRow(
                    r.id,
                    r.source.removeprefix(RETIRED_PREFIX),
                    not r.source.startswith(RETIRED_PREFIX),
                    r.enrolled_at,
                    r.consent_ref,
                )
                for r in rows
            ]

    def revert(self, elder_id: str, to: dt.datetime, at: dt.datetime, who: str) -> Reverted:
        """Undo every learned-template change of the elder after `to`, newest first: learned
        templates deleted, the templates they retired restored. Recorded in audit_event."""
        removed: list[int] = []
        restored: list[int] = []
        with self.store.write() as session:
            events = [
                e
                for e in session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.kind == "face_template_adapted")
                    .order_by(AuditEvent.id.desc())
                )
                if _aware(e.at, to) > to and json.loads(e.detail).get("elder") == elder_id
            ]
            for event in events:
                detail = json.loads(event.detail)
                added = session.get(FaceTemplate, int(detail["added"]))
                if added is not None and added.elder_id == elder_id:
                    session.delete(added)
                    removed.append(added.id)
                ids = [int(i) for i in detail.get("retired", [])]
                if ids:
                    session.execute(
                        update(FaceTemplate)
                        .where(FaceTemplate.id.in_(ids), FaceTemplate.elder_id == elder_id)
                        .values(source=ADAPT_SOURCE)
                    )
                    restored.extend(ids)
            restored = [i for i in restored if i not in removed]
            session.add(
                AuditEvent(
                    at=at,
                    kind="face_template_reverted",
                    detail=json.dumps(
                        {
                            "who": who,
                            "elder": elder_id,
                            "to": to.isoformat(),
                            "removed": removed,
                            "restored": restored,
                        }
                    ),
                )
            )
        return Reverted(elder_id, removed, restored)


def templates_by_detector(store: Store) -> dict[str, tuple[int, int]]:
    """Active templates and elders per detector ({"hog": (12, 6)}); reads no encoding, so it
    needs no face key (kiosk doctor)."""
    query = _active(
        select(
            FaceTemplate.detector,
            func.count(FaceTemplate.id),
            func.count(func.distinct(FaceTemplate.elder_id)),
        )
    ).group_by(FaceTemplate.detector)
    with store.read() as session:
        return {str(d): (int(n), int(e)) for d, n, e in session.execute(query)}


def detector_mismatch(by_detector: dict[str, tuple[int, int]], configured: str) -> str | None:
    """What is wrong when templates were made by another detector than `configured`, or None.
    Those templates are not matched: an encoding aligned from another detector's box sits
    ~0.075 (up to 0.15) away from the camera's, a third of the threshold (docs/face.md)."""
    other = {d: v for d, v in sorted(by_detector.items()) if d != configured}
    if not other:
        return None
    made = ", ".join(f"{n} template(s) of {e} elder(s) by {d}" for d, (n, e) in other.items())
    usable = by_detector.get(configured, (0, 0))[1]
    return (
        f"face.detector is {configured}, but {made}: those are not matched ({usable} elder(s) "
        f"have {configured} templates); re-enrol those elders with {configured}, or set "
        f"face.detector back"
    )


def _active(query: Any) -> Any:
    """Only templates in use: a retired one is kept for `revert`, never matched."""
    return query.where(FaceTemplate.source.not_like(RETIRED_PREFIX + "%"))


def _aware(value: dt.datetime, like: dt.datetime) -> dt.datetime:
    """SQLite may hand back naive datetimes; compare them in the caller's zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=like.tzinfo)


@dataclass(frozen=True)
class Adapted:
    elder_id: str
    template_id: int
    retired: list[int]
    distance: float
    margin: float


@dataclass(frozen=True)
class TemplateRow:
    id: int
    source: str  # file | camera | screen | adapt
    active: bool
    enrolled_at: dt.datetime
    consent_ref: str


@dataclass(frozen=True)
class Reverted:
    elder_id: str
    removed: list[int]
    restored: list[int]
