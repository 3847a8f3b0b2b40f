"""Starting the platform sync jobs inside the daemon, or saying clearly why they don't run.

The kiosk records meals whether or not it can upload them: with no platform configured, no
device token (not provisioned) or no device key, check-in goes on and the outbox grows; the
reason shows in the log and in /api/health.
"""

from __future__ import annotations

import logging
import threading

from hardware.backoff import Backoff
from hardware.card_uid import normalise
from kiosk import __version__
from kiosk.config import load_secret
from kiosk.runtime.services import KioskServices
from kiosk.secret_files import SecretFileError
from sync.heartbeat import HeartbeatExtras
from sync.scheduler import SyncJobs, start_sync_jobs
from sync.signing import DeviceKeyError, default_key_path

log = logging.getLogger(__name__)

# Every sync job holds off together after a failure: 5 s doubling up to 15 min, full jitter.
SYNC_BACKOFF_BASE_S = 5.0
SYNC_BACKOFF_CAP_S = 900.0


def start_sync(services: KioskServices) -> tuple[SyncJobs | None, str]:
    """(the running jobs, "") or (None, why sync is off)."""
    cfg = services.config.platform
    card_format = services.config.roster.card_format
    if not cfg.url:
        return None, "no platform configured (platform.url): records stay on this terminal"
    try:
        token = load_secret("device-token")
    except SecretFileError as exc:
        return None, f"device token refused: {exc}"
    if not token:
        return None, "not provisioned (no device token): run `kiosk provision`"

    # The serving windows go up with every heartbeat: the county judges a silent point by them.
    serving_slots = [
        (service, s.name, s.start, s.end)
        for service, part in (
            ("meal", services.config.meal),
            ("cleaning", services.config.cleaning),
        )
        if part.enabled
        for s in part.slots
    ]

    def extras() -> HeartbeatExtras:
        from kiosk.touchscreen.ledgers import heartbeat_summary

        health = services.health()
        try:
            safety = heartbeat_summary(services.store, services.now())
        except Exception:  # a ledger problem must never stop the heartbeat itself
            log.exception("safety ledger summary for the heartbeat failed")
            safety = None
        return HeartbeatExtras(
            readers={name: r.state for name, r in health.readers.items()},
            camera=health.camera.state,
            safety=safety,
            serving_slots=serving_slots,
        )

    try:
        jobs = start_sync_jobs(
            services.store,
            device_id=services.config.device.device_id,
            point_id=services.config.site.point_id,
            platform_url=cfg.url,
            token=token,
            key_path=default_key_path(services.data_dir),
            backoff=Backoff(SYNC_BACKOFF_BASE_S, SYNC_BACKOFF_CAP_S),
            platform_public_key=cfg.public_key,
            batch_size=cfg.batch_size,
            upload_interval_s=cfg.upload_interval_s,
            checkpoint_interval_s=cfg.checkpoint_interval_s,
            roster_interval_s=cfg.roster_interval_s,
            heartbeat_interval_s=cfg.heartbeat_interval_s,
            reconcile_interval_s=cfg.reconcile_interval_s,
            reconcile_days=cfg.reconcile_days,
            software_version=__version__,
            heartbeat_extras=extras,
            # Signed rosters' card numbers in the roster's form, like file imports and taps.
            card_form=lambda uid: normalise(uid, card_format, card_format),
            county_cards=services.config.roaming.accept_visitors,
        )
    except DeviceKeyError as exc:
        return None, f"device key: {exc}"
    # At start, compare with the platform's newest checkpoint ack at once (the scheduler spreads
    # its first runs over a minute): a chain rolled back while the daemon was down stops
    # check-in before it can fork (issue 12.8). Off the main thread: the link may be slow.
    threading.Thread(
        target=jobs.runner.checkpoint_job, name="first-checkpoint", daemon=True
    ).start()
    return jobs, ""
