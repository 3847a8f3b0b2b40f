"""The sync jobs inside the daemon: APScheduler 3 BackgroundScheduler, plain parameters.

Jobs: upload (checkpoint + outbox drain), checkpoint, roster pull, reconcile, heartbeat. They
share one platform client and one `Backoff`: when the platform is down or says Retry-After, all
jobs hold off together. A reconciliation skipped or failed while the link was down is owed: it
runs as soon as any job reaches the platform again, not one reconcile interval later.

Every instant stamped here (last success, `uploaded_at` in the outbox) is UTC, whatever the
system zone: `kiosk sync` and the daemon stamp the same way, so "last success" compares
instants, not local wall-clock texts.

First runs are spread over one interval and every run is jittered, so a county's kiosks
restarted together (power back after a storm) do not arrive in lock-step.

The daemon calls `start_sync_jobs(...)` and, on shutdown, `jobs.shutdown()`.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from models.db import Store
from sync.backoff import Backoff
from sync.book_uploader import BookUploader
from sync.checkpoint import push_checkpoint
from sync.client import PlatformClient, PlatformError
from sync.county_cards import pull_county_cards
from sync.heartbeat import HeartbeatExtras, build_heartbeat
from sync.reconcile import reconcile
from sync.roster_pull import CardForm, pull_roster
from sync.signing import PlatformVerifier, load_device_key
from sync.uploader import RoundResult, Uploader

log = logging.getLogger(__name__)


@dataclass
class SyncState:
    """The last outcome of each job, for health and the page."""

    last_upload: RoundResult | None = None
    last_success_at: dt.datetime | None = None
    last_error: str | None = None
    roster_version: int | None = None
    checkpoint_conflict: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SyncRunner:
    """The job bodies, callable directly (tests, `kiosk sync`) or from the scheduler."""

    def __init__(
        self,
        store: Store,
        client: PlatformClient,
        uploader: Uploader,
        *,
        device_id: str,
        point_id: str,
        verifier: PlatformVerifier | None,
        clock: Callable[[], dt.datetime],
        backoff: Backoff,
        reconcile_days: int = 35,
        software_version: str = "",
        location: tuple[float, float] | None = None,
        heartbeat_extras: Callable[[], HeartbeatExtras] | None = None,
        card_form: CardForm | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.uploader = uploader
        self.device_id = device_id
        self.point_id = point_id
        self.verifier = verifier
        self.clock = clock
        self.backoff = backoff
        self.reconcile_days = reconcile_days
        self.software_version = software_version
        self.location = location
        self.heartbeat_extras = heartbeat_extras
        self.card_form = card_form  # roster card numbers -> the roster's form
        self.state = SyncState()
        # The village's books ride along with every upload round (few entries a day).
        self.books = BookUploader(store, client, device_id, utc_clock(clock))
        self._upload_lock = threading.Lock()
        # Set while a reconciliation is owed (skipped during backoff, or failed); see _guarded.
        self._reconcile_owed = False
        self._owed_lock = threading.Lock()

    def _utc_now(self) -> dt.datetime:
        return self.clock().astimezone(dt.UTC)

    def _guarded(self, name: str, body: Callable[[], None]) -> bool:
        """Run a job body unless backing off; failures feed the shared backoff."""
        if not self.backoff.ready():
            log.debug("%s skipped: backing off %.0fs more", name, self.backoff.wait_s())
            if name == "reconcile":
                self._reconcile_owed = True
            return False
        try:
            body()
        except PlatformError as exc:
            delay = self.backoff.next_delay(exc.retry_after)
            self.state.last_error = f"{name}: {exc}"
            if name == "reconcile":
                self._reconcile_owed = True
            log.error("%s failed (%s); next attempt in %.0fs", name, exc, delay)
            return False
        self.backoff.reset()
        # The platform answered: the link is back, so the screen must stop saying it is not.
        self.state.last_error = None
        self.state.last_success_at = self._utc_now()
        if name == "reconcile":
            self._reconcile_owed = False
        else:
            self._pay_owed_reconcile()
        return True

    def _pay_owed_reconcile(self) -> None:
        with self._owed_lock:
            if not self._reconcile_owed:
                return
            self._reconcile_owed = False
        log.info("link is back: running the reconciliation skipped while it was down")
        self.reconcile_job()

    @property
    def reconcile_owed(self) -> bool:
        return self._reconcile_owed

    def upload_job(self) -> bool:
        def body() -> None:
            push_checkpoint(
                self.store, self.client, self.uploader.key, self.device_id, self._utc_now()
            )
            with self._upload_lock:
                result = self.uploader.run_round()
                if result.ok:
                    self.books.run_round()
            self.state.last_upload = result
            if not result.ok:
                raise PlatformError("upload", result.error or "", retry_after=result.retry_after)

        return self._guarded("upload", body)

    def checkpoint_job(self) -> bool:
        def body() -> None:
            result = push_checkpoint(
                self.store, self.client, self.uploader.key, self.device_id, self._utc_now()
            )
            self.state.checkpoint_conflict = result.detail if result.status != "ok" else None

        return self._guarded("checkpoint", body)

    def roster_job(self) -> bool:
        if self.verifier is None:
            log.warning("roster pull skipped: no platform public key configured")
            return False

        def body() -> None:
            assert self.verifier is not None
            outcome = pull_roster(
                self.store,
                self.client,
                self.verifier,
                self.point_id,
                self._utc_now(),
                card_form=self.card_form,
            )
            self.state.roster_version = outcome.version

        return self._guarded("roster", body)

    def county_cards_job(self) -> bool:
        """The signed county card list (roaming elders), only where visitors are accepted."""
        if self.verifier is None:
            log.warning("county card list pull skipped: no platform public key configured")
            return False

        def body() -> None:
            assert self.verifier is not None
            pull_county_cards(
                self.store,
                self.client,
                self.verifier,
                self.point_id,
                self._utc_now(),
                card_form=self.card_form,
            )

        return self._guarded("county-cards", body)

    def reconcile_job(self) -> bool:
        def body() -> None:
            # One day past "today" in UTC covers today in any site zone ahead of UTC.
            last = (self._utc_now() + dt.timedelta(days=1)).date()
            start = last - dt.timedelta(days=self.reconcile_days + 1)
            result = reconcile(self.store, self.client, start, last, self._utc_now())
            if result.resent:
                log.warning("reconciliation re-queued %d records", result.resent)
            self.books.reconcile()  # the village's books: re-send what the platform lost

        return self._guarded("reconcile", body)

    def heartbeat_job(self) -> bool:
        def body() -> None:
            hb = build_heartbeat(
                self.store,
                self.device_id,
                self.clock(),
                software_version=self.software_version,
                location=self.location,
                clock_offset_s=self.client.clock_offset_s,
                extras=self.heartbeat_extras,
            )
            self.client.heartbeat(hb)

        return self._guarded("heartbeat", body)


def utc_clock(clock: Callable[[], dt.datetime]) -> Callable[[], dt.datetime]:
    """The same clock, read in UTC: what every stored instant uses."""
    return lambda: clock().astimezone(dt.UTC)


@dataclass
class SyncJobs:
    scheduler: BackgroundScheduler
    runner: SyncRunner

    def shutdown(self, wait: bool = True) -> None:
        self.scheduler.shutdown(wait=wait)
        self.runner.client.close()


def start_sync_jobs(
    store: Store,
    *,
    device_id: str,
    point_id: str,
    platform_url: str,
    token: str,
    key_path: Path,
    backoff: Backoff,
    platform_public_key: str | None = None,
    batch_size: int = 500,
    upload_interval_s: float = 60,
    checkpoint_interval_s: float = 60,
    roster_interval_s: float = 900,
    reconcile_interval_s: float = 6 * 3600,
    heartbeat_interval_s: float = 300,
    reconcile_days: int = 35,
    software_version: str = "",
    location: tuple[float, float] | None = None,
    heartbeat_extras: Callable[[], HeartbeatExtras] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    card_form: CardForm | None = None,
    county_cards: bool = False,
) -> SyncJobs:
    """Start the sync jobs in a background scheduler; call `.shutdown()` on stop.

    `backoff` is shared by every job; the caller builds it (the one implementation is
    hardware/backoff.py, which sync may not import: see sync/backoff.py).

    Raises `sync.signing.DeviceKeyError` if the device key cannot be loaded (the kiosk is not
    provisioned): the daemon should log it and run offline, records keep accumulating.
    """
    clock = clock or (lambda: dt.datetime.now().astimezone())
    key = load_device_key(key_path)
    client = PlatformClient(platform_url, token)
    uploader = Uploader(
        store, client, key, device_id, batch_size=batch_size, clock=utc_clock(clock)
    )
    verifier = PlatformVerifier.from_b64(platform_public_key) if platform_public_key else None
    runner = SyncRunner(
        store,
        client,
        uploader,
        device_id=device_id,
        point_id=point_id,
        verifier=verifier,
        clock=clock,
        backoff=backoff,
        reconcile_days=reconcile_days,
        software_version=software_version,
        location=location,
        heartbeat_extras=heartbeat_extras,
        card_form=card_form,
    )
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=dt.UTC,
    )
    rng = random.Random()
    now = dt.datetime.now(dt.UTC)
    jobs: list[tuple[str, Callable[[], bool], float]] = [
        ("upload", runner.upload_job, upload_interval_s),
        ("checkpoint", runner.checkpoint_job, checkpoint_interval_s),
        ("roster", runner.roster_job, roster_interval_s),
        ("reconcile", runner.reconcile_job, reconcile_interval_s),
        ("heartbeat", runner.heartbeat_job, heartbeat_interval_s),
    ]
    if county_cards:  # roaming.accept_visitors: the county card list, as often as the roster
        jobs.append(("county-cards", runner.county_cards_job, roster_interval_s))
    for name, func, interval in jobs:
        scheduler.add_job(
            func,
            IntervalTrigger(seconds=interval, jitter=max(1, int(interval / 10))),
            id=name,
            name=f"sync {name}",
            # Spread first runs over one interval: no county-wide stampede after an outage.
            next_run_time=now + dt.timedelta(seconds=rng.uniform(0, min(interval, 60))),
        )
    scheduler.start()
    log.info("sync jobs started for %s -> %s", device_id, platform_url)
    return SyncJobs(scheduler, runner)
