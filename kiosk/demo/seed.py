"""`kiosk demo`: a kiosk with a seeded roster and a simulated queue of elders.

Runs on a laptop with nothing attached: temporary data directory, ~30 elders (a few suspended or
without a signed agreement, to show refusals), and simulated card taps at a human pace,
including a repeat tap and an unregistered card.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from pathlib import Path

from hardware.simulated import SimulatedReader, tap_at_human_pace
from kiosk.checkin.schedule import open_slot
from kiosk.config import KioskConfig, ReaderConfig, SlotConfig
from kiosk.demo.history import seed_history
from kiosk.demo.platform import DemoPlatform
from kiosk.ops.roster_import import mask_id_number
from kiosk.runtime.daemon import Daemon, build_services
from models.roster import RosterRow, apply_rows

log = logging.getLogger(__name__)

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "秀英 桂兰 玉兰 建国 德明 凤英 保国 文华 金花 永福 春梅 志刚 淑珍 树林 翠花 长生".split()  # noqa: SIM905
GROUPS = ["一组", "二组", "三组", "四组"]
UNKNOWN_CARD = "DEADBEEF"


def demo_roster(n: int = 30, seed: int = 7) -> list[RosterRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        born = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 19))
        id_number = f"141129{born:%Y%m%d}{rng.randrange(100, 999)}{rng.randrange(10)}"
        rows.append(
            RosterRow(
                elder_id=f"E{i + 1:04d}",
                name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                id_number_masked=mask_id_number(id_number),
                card_uid=f"{rng.getrandbits(32):08X}",
                group=rng.choice(GROUPS),
                contact_phone=f"13{rng.randrange(10**9):09d}",
                status="suspended" if i == 7 else "active",
                agreement_signed=i != 12,
            )
        )
    return rows


def demo_config(config: KioskConfig, port: int, now: dt.datetime) -> KioskConfig:
    """The configured site with a simulated reader, and lunch open now so taps count."""
    meal = config.meal
    if open_slot(config, "meal", now) is None:
        local = now.astimezone(config.site.tz)
        start = (local - dt.timedelta(minutes=5)).time().replace(second=0, microsecond=0)
        end = dt.time(23, 59) if local.hour >= 21 else (local + dt.timedelta(hours=2)).time()
        if start >= end:  # just after midnight: open from 00:00
            start = dt.time(0, 0)
        log.info("no meal slot is open now; the demo opens lunch %s-%s", start, end)
        meal = meal.model_copy(update={"slots": [SlotConfig(name="lunch", start=start, end=end)]})
    return config.model_copy(
        update={
            "meal": meal,
            "readers": [ReaderConfig(kind="simulated", name="demo-reader")],
            # 助洁 on, so the history and the monthly notice show it too.
            "cleaning": config.cleaning.model_copy(update={"enabled": True}),
            "web": config.web.model_copy(update={"port": port}),
        }
    )


def run_demo(
    config: KioskConfig, data_dir: Path, port: int, pace_s: float, with_platform: bool = True
) -> int:
    now = dt.datetime.now(config.site.tz)
    config = demo_config(config, port, now)
    platform = DemoPlatform(data_dir) if with_platform else None
    if platform is not None:
        public_key = platform.start()
        platform.provision_kiosk(config.device.device_id, config.site.point_id)
        config = config.model_copy(
            update={
                "platform": config.platform.model_copy(
                    update={"url": platform.url, "public_key": public_key, "upload_interval_s": 10}
                )
            }
        )
    try:
        reader = SimulatedReader("demo-reader")
        services = build_services(config, data_dir, readers=[(config.readers[0], reader)])
        roster = demo_roster()
        apply_rows(services.store, roster, now, source="demo")
        pin = seed_history(services, roster, now.date())
        queue = [r.card_uid for r in roster if r.card_uid]
        random.Random(1).shuffle(queue)
        queue.insert(3, queue[1])  # someone taps twice
        queue.insert(6, UNKNOWN_CARD)  # a visitor's bus card
        daemon = Daemon(services)
        feeder = threading.Thread(
            target=tap_at_human_pace, args=(reader, queue, daemon.stop, pace_s), daemon=True
        )
        feeder.start()
        log.info("demo data in %s", data_dir)
        where = f"; uploads to the reference platform at {platform.url}" if platform else ""
        url = f"http://{config.web.host}:{port}/"
        print(f"\n  Haolinju Kiosk demo: open {url}{where}  (Ctrl-C to stop)")  # noqa: T201
        who = f"  caregiver 李秀兰 (C001), PIN {pin}: the caregiver screens (人工签到, 账目, ...)"
        print(who + "\n")  # noqa: T201
        return daemon.run()
    finally:
        if platform is not None:
            platform.stop()
