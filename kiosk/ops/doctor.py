"""`kiosk doctor`: one table of checks a technician reads top to bottom, each red line with its fix.

Checks never raise: whatever is broken becomes a line. `blocking` marks problems that stop the
kiosk from recording meals; only those make the command exit non-zero.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from hardware.card_uid import InvalidUidError, normalise
from kiosk.config import KioskConfig, ReaderConfig, config_warnings, mask_url
from kiosk.ops.storage import StoreDamagedError
from kiosk.secret_files import SecretFileError
from models.chain import SignatureCheck
from models.db import Store
from models.tables import MealRecord, Outbox
from sync.signing import PlatformVerifier

LOW_DISK_BYTES = 200 * 1024 * 1024
CLOCK_OFFSET_WARN_S = 60.0


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""
    blocking: bool = False


def check_database(open_store: Callable[[], Store]) -> tuple[list[Check], Store | None]:
    try:
        store = open_store()
    except StoreDamagedError as exc:
        return [Check("database", Level.FAIL, str(exc), "kiosk db restore <backup>", True)], None
    except (SQLAlchemyError, OSError) as exc:
        fix = "check the data directory exists and belongs to the kiosk user"
        return [Check("database", Level.FAIL, f"cannot open: {exc}", fix, True)], None
    try:
        store.write_probe()
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", exc)
        return [
            Check("database", Level.FAIL, f"not writable: {reason}", "free the disk or "
                  "remount it read-write; stop other programs holding kiosk.db", True)
        ], store  # fmt: skip
    return [Check("database", Level.OK, f"{store.db_path} writable, quick check ok")], store


def check_disk(data_dir: Path) -> Check:
    free = shutil.disk_usage(data_dir if data_dir.exists() else data_dir.parent).free
    text = f"{free / 2**20:.0f} MiB free in {data_dir}"
    if free < LOW_DISK_BYTES:
        return Check("disk", Level.FAIL, text, "delete old files outside the data directory", True)
    return Check("disk", Level.OK, text)


def check_clock() -> Check:
    """Subsidy records carry times: an unsynchronised clock (no RTC battery) must be seen."""
    if shutil.which("timedatectl"):
        out = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
        if out.stdout.strip() == "yes":
            return Check("clock", Level.OK, "synchronised (NTP)")
        if out.returncode == 0:
            return Check("clock", Level.WARN, "not synchronised", "enable systemd-timesyncd")
    if Path("/run/systemd/timesync/synchronized").exists():
        return Check("clock", Level.OK, "synchronised (timesyncd)")
    now = dt.datetime.now().astimezone()
    return Check("clock", Level.WARN, f"synchronisation unknown; local time {now:%F %T %z}",
                 "check the time against a phone; enable systemd-timesyncd")  # fmt: skip


def check_reader(cfg: ReaderConfig, roster_form: str) -> list[Check]:
    name = f"reader {cfg.name} ({cfg.kind})"
    if cfg.kind == "simulated":
        return [Check(name, Level.OK, "simulated (no hardware)")]
    if cfg.kind == "pcsc":
        from hardware.pcsc_reader import probe

        result = probe(str(cfg.options.get("reader_filter", "")))
        if result.service != "ok":
            fix = "apt-get install pcscd; systemctl start pcscd.socket"
            return [Check(name, Level.FAIL, result.service, fix)]
        if not result.readers:
            return [Check(name, Level.FAIL, "pcscd runs but sees no reader", "plug the reader in")]
        lines = [Check(name, Level.OK, f"pcscd ok; readers: {', '.join(result.readers)}")]
        for reader, uid in result.cards.items():
            lines.append(Check(f"  card on {reader}", Level.OK, _card_line(uid, roster_form)))
        return lines
    device = Path(cfg.device or "")
    if not device.exists():
        fix = "plug it in; use a stable /dev/serial/by-id or /dev/input/by-id path"
        return [Check(name, Level.FAIL, f"{device} not found", fix)]
    return [Check(name, Level.OK, f"{device} present")]


def _card_line(uid: str, roster_form: str) -> str:
    if uid.startswith("error"):
        return uid
    try:
        return f"UID {uid} -> roster form ({roster_form}) {normalise(uid, 'hex', roster_form)}"
    except InvalidUidError as exc:
        return f"UID {uid}: {exc}"


def check_camera(config: KioskConfig) -> Check:
    if not config.camera.enabled:
        return Check("camera", Level.OK, "disabled (card check-in only)")
    import cv2

    cap = cv2.VideoCapture(config.camera.source)
    try:
        ok, frame = cap.read()
    finally:
        cap.release()
    source = mask_url(config.camera.source)  # rtsp://user:***@...: no password on screen
    if not ok or frame is None:
        fix = "check the cable / RTSP URL; `v4l2-ctl --list-devices`"
        return Check("camera", Level.FAIL, f"no frame from {source!r}", fix)
    return Check("camera", Level.OK, f"{frame.shape[1]}x{frame.shape[0]} from {source!r}")


def check_face_templates(config: KioskConfig, store: Store) -> Check:
    """Templates made by another face detector than `face.detector` are not matched: those
    elders get 请刷卡 until they are re-enrolled (not blocking: the card still works)."""
    from kiosk.face.templates import detector_mismatch, templates_by_detector

    detector = config.face.detector
    counts = templates_by_detector(store)
    mismatch = detector_mismatch(counts, detector)
    if mismatch is not None:
        fix = "kiosk enroll <elder> <photo> --consent <ref> (or the enrol page) per elder"
        return Check("face templates", Level.WARN, mismatch, fix)
    templates, elders = counts.get(detector, (0, 0))
    return Check("face templates", Level.OK, f"{templates} of {elders} elders, by {detector}")


def check_speaker(config: KioskConfig) -> Check:
    if not config.speech.enabled:
        return Check("speaker", Level.OK, "spoken prompts disabled")
    from hardware.speaker import find_player

    if shutil.which("espeak-ng") is None:
        return Check("speaker", Level.WARN, "espeak-ng missing: no spoken prompts",
                     "apt-get install espeak-ng")  # fmt: skip
    player = find_player()
    if player is None:
        return Check("speaker", Level.WARN, "no audio player (aplay/paplay): prompts are silent",
                     "apt-get install alsa-utils")  # fmt: skip
    return Check("speaker", Level.OK, f"espeak-ng + {player[0]}")


def check_platform(config: KioskConfig, now: dt.datetime) -> list[Check]:
    """Reachable, same time, and does it accept this terminal's token?"""
    url = config.platform.url
    if not url:
        return [Check("platform", Level.OK, "offline only (platform.url not set)")]
    from kiosk.config import load_secret
    from sync.client import PlatformClient, PlatformError

    try:
        health = httpx.get(f"{url.rstrip('/')}/v1/health", timeout=5).json()
        server_time = dt.datetime.fromisoformat(health["server_time"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return [Check("platform", Level.FAIL, f"{url} unreachable: {exc}",
                      "check the network / 4G modem and platform.url")]  # fmt: skip
    offset = (server_time - now).total_seconds()
    checks = [Check("platform", Level.OK, f"{url} reachable")]
    level = Level.WARN if abs(offset) > CLOCK_OFFSET_WARN_S else Level.OK
    checks.append(Check("clock vs platform", level, f"{offset:+.1f} s",
                        "enable systemd-timesyncd; check the time zone"))  # fmt: skip
    try:
        token = load_secret("device-token")
    except SecretFileError as exc:
        checks.append(Check("credentials", Level.FAIL, str(exc)))
        return checks
    if not token:
        checks.append(Check("credentials", Level.FAIL, "no device token (not provisioned)",
                            "kiosk provision --platform URL --token T"))  # fmt: skip
        return checks
    client = PlatformClient(url, token)
    try:
        today = now.date()
        client.reconcile(today, today)
        checks.append(Check("credentials", Level.OK, "the platform accepts this terminal's token"))
    except PlatformError as exc:
        fix = "ask the county to check the device; re-provision" if exc.kind == "auth" else ""
        checks.append(Check("credentials", Level.FAIL, f"{exc.kind}: {exc.message}", fix))
    finally:
        client.close()
    return checks


def check_outbox(store: Store, now: dt.datetime) -> Check:
    with store.read() as s:
        pending, oldest = s.execute(
            select(func.count(), func.min(MealRecord.checked_in_at))
            .select_from(Outbox)
            .join(MealRecord)
            .where(Outbox.uploaded_at.is_(None))
        ).one()
    if not pending:
        return Check("unsent records", Level.OK, "none")
    # The column's type decorator already turns the MIN() into an aware datetime; older
    # SQLAlchemy versions hand back the stored text. Accept both (this line used to crash).
    first = oldest if isinstance(oldest, dt.datetime) else dt.datetime.fromisoformat(str(oldest))
    age = now - first
    level = Level.WARN if age > dt.timedelta(days=1) else Level.OK
    return Check("unsent records", level, f"{pending}, oldest {age.days} d {age.seconds // 3600} h",
                 "check the platform connection (kiosk sync --status)")  # fmt: skip


def device_signature_check(data_dir: Path) -> tuple[SignatureCheck | None, str]:
    """The device key's record check, or None and why (doctor may run without the key)."""
    from sync.signing import DeviceKeyError, default_key_path, load_device_key

    path = default_key_path(data_dir)
    if not path.exists():
        return None, f"no device key at {path}"
    try:
        return load_device_key(path).record_ok, ""
    except DeviceKeyError as exc:
        return None, str(exc)


def check_evidence(
    store: Store,
    signature_ok: SignatureCheck | None,
    why_unchecked: str = "",
    platform: PlatformVerifier | None = None,
) -> Check:
    """Chain links, hashes, signatures, outbox and platform receipts, over every record."""
    from sync.evidence import audit_evidence

    report = audit_evidence(store, signature_ok, platform)
    if report.problems:
        fix = (
            "records were changed outside the kiosk: stop it, keep the database as evidence, "
            "tell the county (kiosk recover --from-platform restores the platform's copy)"
        )
        return Check("local evidence", Level.FAIL, "; ".join(report.problems), fix, True)
    detail = f"{report.records} records, chain to seq {report.head_seq} intact"
    if signature_ok is None:
        return Check("local evidence", Level.WARN, f"{detail}; signatures not checked: "
                     f"{why_unchecked}", "run doctor as root (the device key is 0600)")  # fmt: skip
    return Check("local evidence", Level.OK, f"{detail}, every signature verifies")


def run_checks(config: KioskConfig, data_dir: Path, open_store: Callable[[], Store]) -> list[Check]:
    checks = [
        Check("config", Level.OK, f"site {config.site.point_id}, device {config.device.device_id}")
    ]
    checks += [Check("config", Level.WARN, warning) for warning in config_warnings(config)]
    db_checks, store = check_database(open_store)
    checks += db_checks
    checks.append(check_disk(data_dir))
    checks.append(check_clock())
    for reader in config.readers:
        checks += check_reader(reader, str(config.roster.card_format))
    checks.append(check_camera(config))
    checks.append(check_speaker(config))
    checks += check_platform(config, dt.datetime.now(dt.UTC))
    if store is not None:
        checks.append(check_outbox(store, dt.datetime.now(config.site.tz)))
        if config.camera.enabled:
            checks.append(check_face_templates(config, store))
        from kiosk.checkin.rules import platform_verifier

        signature_ok, why = device_signature_check(data_dir)
        checks.append(check_evidence(store, signature_ok, why, platform_verifier(config)))
        store.close()
    return checks
