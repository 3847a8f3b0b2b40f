"""Composition root: builds a kiosk from its config and runs it as a daemon.

Threads, not processes: one per card reader, uvicorn in its own thread, and the main thread as
the supervisor that owns the single `stop` event. SIGTERM/SIGINT set it; shutdown then drains
in order (web server, readers, database) so systemd sees a clean exit.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from hardware.camera import Camera
from hardware.card_uid import InvalidUid, normalise
from hardware.cards import CardReader, CardTap
from hardware.readers import make_reader
from kiosk.api.factory import create_app
from kiosk.checkin.events import EventBus
from kiosk.checkin.rules import CheckinRequest, CheckinService, Method
from kiosk.config import KioskConfig, ReaderConfig
from kiosk.face.templates import FaceKey, FaceKeyError, TemplateStore
from kiosk.face.worker import FaceWorker
from kiosk.ops.storage import open_store
from kiosk.runtime.reader_hub import ReaderHub
from kiosk.runtime.sdnotify import Notifier
from kiosk.runtime.services import KioskServices
from kiosk.runtime.sync_jobs import start_sync
from kiosk.runtime.timesync import clock_synchronised
from kiosk.touchscreen.speech import start_speech
from models.db import Store
from sync.scheduler import SyncJobs

log = logging.getLogger(__name__)

SUPERVISOR_TICK_S = 1.0
CLOCK_CHECK_S = 60.0
# A face worker without a heartbeat for this long is hung (dlib stuck, a deadlock): the
# self-check fails so systemd restarts us. One frame takes ~0.1 s; its idle wait is 0.5 s.
FACE_STALL_S = 15.0


def build_reader(cfg: ReaderConfig) -> CardReader:
    # Constructors only store settings; devices are opened (and retried) in the reader thread.
    return make_reader(cfg.kind, **cfg.reader_params())


def build_services(
    config: KioskConfig,
    data_dir: Path,
    readers: list[tuple[ReaderConfig, CardReader]] | None = None,
    store: Store | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> KioskServices:
    store = store or open_store(data_dir)
    bus = EventBus()
    if readers is None:
        readers = [(cfg, build_reader(cfg)) for cfg in config.readers]
    services = KioskServices(
        config=config,
        store=store,
        bus=bus,
        checkin=CheckinService(config, store, bus, clock=clock),
        readers=ReaderHub(readers),
        data_dir=data_dir,
    )
    if config.camera.enabled:
        build_face(services)
    return services


def build_face(services: KioskServices, camera: Camera | None = None) -> None:
    """Camera, face worker and card evidence. Nothing here may stop card check-in: a bad face
    key disables face check-in (shown in /api/health), a missing camera is retried."""
    from kiosk.face.card_evidence import CardEvidence

    cam_cfg, face_cfg = services.config.camera, services.config.face
    services.camera = camera or Camera(
        cam_cfg.source, loop=cam_cfg.loop, width=cam_cfg.width, height=cam_cfg.height
    )
    templates: TemplateStore | None = None
    key_problem = None
    try:
        templates = TemplateStore(services.store, FaceKey.load(services.data_dir))
    except (FaceKeyError, OSError) as exc:
        key_problem = f"face key: {exc}"
        log.error("face check-in disabled: %s", key_problem)
    services.face = FaceWorker(
        face_cfg, services.camera, services.checkin, templates, key_problem=key_problem
    )
    if face_cfg.card_evidence != "off" and templates is not None:
        services.card_evidence = CardEvidence(
            face_cfg.card_evidence, services.camera, services.face, templates, services.store
        )


def card_tap_handler(services: KioskServices) -> Callable[[ReaderConfig, CardTap], None]:
    """What a reader thread calls for each card: normalise the number, then check in."""
    roster_form = services.config.roster.card_format

    def on_tap(cfg: ReaderConfig, tap: CardTap) -> None:
        try:
            uid = normalise(tap.uid, tap.delivered_as, roster_form)
        except InvalidUid as exc:
            services.checkin.refuse_invalid_card(tap.uid, cfg.name, str(exc))
            return
        # The card-binding screen is waiting for a card: this tap binds, it does not check in.
        if bound := services.card_binding.try_bind(services.store, uid, services.now()):
            services.bus.publish("card_bind", bound.as_event())
            log.info("card %s on %s for binding: %s", uid, cfg.name, bound.outcome)
            return
        req = CheckinRequest(Method.CARD, service=cfg.service, card_uid=uid, reader=cfg.name)
        if services.card_evidence is not None:
            req = services.card_evidence.apply(req)  # face seen? -> card+face or a flag
        result = services.checkin.check_in(req)
        log.info("card %s on %s: %s %s", uid, cfg.name, result.outcome, result.elder_id or "")

    return on_tap


class Daemon:
    """`kiosk run`: the readers, the web server and the supervisor loop."""

    def __init__(self, services: KioskServices) -> None:
        self.services = services
        self.stop = services.stopping
        app = create_app(services)
        web = services.config.web
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=web.host,
                port=web.port,
                log_config=None,  # keep our logging setup (journald-friendly)
                # X-Forwarded-For only from web.trusted_proxies, in the app (kiosk.api.factory)
                proxy_headers=False,
                timeout_graceful_shutdown=3,
                lifespan="off",
            )
        )
        self._web_thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self._camera_thread: threading.Thread | None = None
        self.notifier = Notifier()
        self.sync: SyncJobs | None = None
        # Feed the watchdog well inside its interval (systemd sets WATCHDOG_USEC).
        wd = self.notifier.watchdog_s
        self._tick_s = min(SUPERVISOR_TICK_S, wd / 4) if wd else SUPERVISOR_TICK_S

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self.stop.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.services.readers.start(card_tap_handler(self.services), self.stop)
        # spoken prompts; never blocks a check-in
        self.services.speaker = start_speech(self.services, self.stop)
        self._start_face()
        # Chain, signatures and outbox re-checked at start and every minute (health shows it).
        self.services.checkin.start_evidence_checks(self.stop)
        self.sync, why_not = start_sync(self.services)
        self.services.sync_state = self.sync.runner.state if self.sync else None
        self.services.sync_off_reason = why_not
        if why_not:
            log.warning("sync off: %s", why_not)
        self._web_thread.start()
        web = self.services.config.web
        if not self._wait_for_web():
            log.error("web server did not start (port %d in use?)", web.port)
            return self.shutdown(exit_code=1)
        url = f"http://{web.host}:{web.port}/"
        log.info("kiosk %s serving on %s", self.services.config.device.device_id, url)
        self.notifier.ready(f"serving on {url}")
        next_clock_check = 0.0
        while not self.stop.wait(self._tick_s):
            if time.monotonic() >= next_clock_check:
                self._check_clock()
                next_clock_check = time.monotonic() + CLOCK_CHECK_S
            problem = self.self_check()
            if problem is None:
                # Only a loop that just proved the daemon healthy may feed the watchdog: a
                # stuck database or a dead thread stops the pings and systemd restarts us.
                self.notifier.watchdog()
            else:
                log.error("self-check failed, not feeding the watchdog: %s", problem)
                if not self._web_thread.is_alive():
                    return self.shutdown(exit_code=1)
        return self.shutdown()

    def _check_clock(self) -> None:
        synced = clock_synchronised()
        unsynced = synced is False
        if unsynced != self.services.checkin.clock_unsynced:
            log.warning("system clock %s", "NOT synchronised" if unsynced else "synchronised")
        self.services.checkin.clock_unsynced = unsynced
        self.services.clock_synced = synced

    def _start_face(self) -> None:
        camera, face = self.services.camera, self.services.face
        if camera is None or face is None:
            return
        self._camera_thread = threading.Thread(
            target=camera.run, args=(self.stop,), name="camera", daemon=True
        )
        self._camera_thread.start()
        face.start(self.stop)

    def _wait_for_web(self, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._web_thread.is_alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def self_check(self) -> str | None:
        """Why the daemon is unhealthy, or None. Runs on the main loop every tick."""
        if not self._web_thread.is_alive():
            return "web server thread stopped"
        dead = [
            s.config.name
            for s in self.services.readers.slots
            if not s.thread or not s.thread.is_alive()
        ]
        if dead:
            return f"reader thread(s) stopped: {', '.join(dead)}"
        # A missing camera is only "degraded" (card check-in goes on); a dead or hung face
        # worker is a fault to restart for.
        if self.services.face is not None and (problem := self.services.face.problem(FACE_STALL_S)):
            return problem
        try:
            self.services.store.write_probe()
        except SQLAlchemyError as exc:
            return f"database not writable: {getattr(exc, 'orig', exc)}"
        return None

    def shutdown(self, exit_code: int = 0) -> int:
        self.stop.set()
        self.notifier.stopping()
        self.services.bus.publish("status", {"state": "stopping"})  # wakes the SSE streams
        self.server.should_exit = True
        if self.sync is not None:
            self.sync.shutdown()
        self._web_thread.join(timeout=10)
        self.services.readers.join()
        if self.services.face is not None:
            self.services.face.join()
        if self._camera_thread is not None:
            self._camera_thread.join(timeout=5)
        self.services.store.close()
        log.info("kiosk stopped cleanly")
        return exit_code
