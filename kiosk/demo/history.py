"""Sixty days of plausible history for `kiosk demo`, so every page shows real content on first
start: lunches with a village canteen's weekly rhythm (busier on weekdays, a few regulars who
stopped coming lately), 助洁 visits, the safety ledgers, purchases, meal fees, donations, a
township patrol, health certificates, and a caregiver whose PIN the demo prints.

Past meals are appended straight to the chain with the device key (the rules' "is a slot open
now" check cannot apply to last month); they carry reader "demo-history" so nobody mistakes them
for taps. Everything else goes through the same functions the touchscreen uses.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
from collections.abc import Sequence

from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.books import BookError, Books, previous_month
from kiosk.touchscreen.caregivers import CaregiverBook, PinError, check_pin_form
from kiosk.touchscreen.ledgers import INSPECTION_ITEMS, record_inspection, record_sample
from models.records import RecordSigner, append_record
from models.roster import RosterRow

log = logging.getLogger(__name__)

DAYS = 60
# (weekdays, food type, item, quantity in 斤, base price, supplier): a village's market days.
WEEKLY = [
    ((0,), "肉", "猪肉", "8", 100, "镇上肉铺"),
    ((0, 3), "蔬菜", "白菜", "20", 30, "本村菜地"),
    ((0,), "粮油", "大米", "50", 120, "镇粮油店"),
    ((3,), "蛋", "鸡蛋", "10", 45, "村口小卖部"),
]
MONTHLY = [("燃料", "液化气", "240.00"), ("护理员报酬", "护理员报酬", "1500.00")]
DISHES = [
    "红烧肉、炒白菜、米饭",
    "西红柿炒蛋、土豆丝、馒头",
    "鱼香肉丝、青菜、米饭",
    "炖鸡、豆腐、面条",
]


def demo_pin(rng: random.Random) -> str:
    """Six digits a caregiver can type, never a trivial one."""
    while True:
        pin = f"{rng.randrange(10**6):06d}"
        try:
            return check_pin_form(pin)
        except PinError:
            continue


def seed_history(
    services: KioskServices, roster: Sequence[RosterRow], today: dt.date, seed: int = 3
) -> str:
    """Write the history; returns the demo caregiver's PIN (printed at start)."""
    rng = random.Random(seed)
    pin = demo_pin(random.Random(secrets.randbits(32)))
    caregivers = CaregiverBook(services.store, services.config.ui, services.now)
    caregivers.add("李秀兰", pin, phone="13900000001", role="in_charge", caregiver_id="C001")
    caregivers.add("张桂芳", demo_pin(rng), phone="13900000002", caregiver_id="C002")
    signer = services.checkin.record_signer()
    if signer is None:
        log.warning("no device key: the demo starts without history")
        return pin
    _meals(services, roster, today, rng, signer)
    _ledgers(services, today)
    _books(services, roster, today, rng)
    return pin


def _meals(
    services: KioskServices,
    roster: Sequence[RosterRow],
    today: dt.date,
    rng: random.Random,
    signer: RecordSigner,
) -> None:
    tz = services.config.site.tz
    lunch = next((s for s in services.config.slots_for("meal") if s.name == "lunch"), None)
    start = lunch.start if lunch else dt.time(11, 0)
    cleaning = next(iter(services.config.slots_for("cleaning")), None)
    active = [r for r in roster if r.status == "active" and r.agreement_signed]
    # Each elder's habit: how often they come; the first three regulars stopped a week ago.
    habit = {r.elder_id: rng.uniform(0.45, 0.95) for r in active}
    stopped = {r.elder_id for r in active[:3]}
    with services.store.write() as s:
        for back in range(DAYS, 0, -1):
            day = today - dt.timedelta(days=back)
            weekday_factor = 1.0 if day.weekday() < 5 else 0.6
            for r in active:
                if r.elder_id in stopped and back <= 7:
                    continue
                if rng.random() > habit[r.elder_id] * weekday_factor:
                    continue
                at = dt.datetime.combine(day, start, tz) + dt.timedelta(minutes=rng.randrange(80))
                append_record(
                    s,
                    signer=signer,
                    device_id=services.config.device.device_id,
                    elder_id=r.elder_id,
                    service="meal",
                    slot="lunch",
                    service_date=day,
                    checked_in_at=at,
                    method="card",
                    card_uid=r.card_uid,
                    reader="demo-history",
                    flags="",
                )
            if cleaning and day.weekday() in (1, 4):  # 助洁 Tuesdays and Fridays, two elders
                for r in rng.sample(active, 2):
                    append_record(
                        s,
                        signer=signer,
                        device_id=services.config.device.device_id,
                        elder_id=r.elder_id,
                        service="cleaning",
                        slot=cleaning.name,
                        service_date=day,
                        checked_in_at=dt.datetime.combine(day, cleaning.start, tz),
                        method="manual",
                        caregiver_id="C002",
                        reason="上门助洁",
                        flags="",
                    )


def _ledgers(services: KioskServices, today: dt.date) -> None:
    tz = services.config.site.tz
    for back in range(DAYS, 0, -1):
        day = today - dt.timedelta(days=back)
        at = dt.datetime.combine(day, dt.time(11, 20), tz)
        record_sample(
            services.store,
            caregiver_id="C001",
            service_date=day,
            slot="lunch",
            dishes=DISHES[back % len(DISHES)],
            at=at,
            now=at,
        )
        if day.weekday() == 0:
            checks = {k: "ok" for k in INSPECTION_ITEMS}
            record_inspection(
                services.store, caregiver_id="C001", day=day, checks=checks, problems="",
                fixed="", now=at,
            )  # fmt: skip


def _books(
    services: KioskServices, roster: Sequence[RosterRow], today: dt.date, rng: random.Random
) -> None:
    books = Books(services.store, services.config.device.device_id, services.checkin.record_signer)
    tz = services.config.site.tz

    def add(kind: str, day: dt.date, **form: str) -> None:
        now = dt.datetime.combine(day, dt.time(16, 0), tz)
        try:
            books.add(kind, {"date": day.isoformat(), **form}, caregiver_id="C001", now=now)
        except BookError as exc:  # a demo bug, not a reason to stop the demo
            log.warning("demo book entry %s on %s refused: %s", kind, day, exc)

    start = today - dt.timedelta(days=DAYS)
    add("cleaning_procedure", start, procedure="预约登记—上门服务—老人确认签字",
        content="打扫卫生、清洗衣物、整理床铺", hours="每周二、周五 下午2点至4点")  # fmt: skip
    for caregiver, expires in (
        ("C001", today + dt.timedelta(days=20)),
        ("C002", today + dt.timedelta(days=200)),
    ):
        add("health_check", start, caregiver_id=caregiver, expires=expires.isoformat())
    for back in range(DAYS, 0, -1):
        day = today - dt.timedelta(days=back)
        # Eggs on Thursdays but none in the last ten days, so the shortage reminder shows.
        for weekdays, food, item, qty, price, supplier in WEEKLY:
            if day.weekday() in weekdays and (food != "蛋" or back > 10):
                amount = f"{price + rng.randrange(0, 20)}.50"
                add("expense", day, category="食材", food_type=food, item=item, quantity=qty,
                    unit="斤", amount=amount, supplier=supplier, buyer="李秀兰")  # fmt: skip
        if day.day == 1:
            for category, item, amount in MONTHLY:
                add("expense", day, category=category, item=item, amount=amount, buyer="村委会")
            add("income", day, source="补贴", amount="3000.00", note="县级补贴")
    last_month = previous_month(today)
    payday = today.replace(day=1) - dt.timedelta(days=20)
    for r in [r for r in roster if r.status == "active"][:8]:
        payer = r.name[0] + rng.choice(["建军", "红梅", "小强"])
        relation = rng.choice(["子女", "子女", "监护人", "本人"])
        add("meal_fee", payday, elder_id=r.elder_id, month=last_month, payer_relation=relation,
            payer_name=payer, amount="60.00")  # fmt: skip
    add("donation", payday, donor="镇供销社", donor_type="企业", what="goods", goods="食用油",
        quantity="10", unit="桶", purpose="改善伙食", ceremony_date=payday.isoformat())  # fmt: skip
    add("donation", payday, donor="王建国", donor_type="个人", what="money", amount="500.00",
        purpose="添置餐具")  # fmt: skip
    due, closed = payday + dt.timedelta(days=7), payday + dt.timedelta(days=3)
    add("patrol", payday, inspector="赵海", role="包村领导", findings="厨房整洁，台账齐全",
        hazards="灭火器过期", rectification="已更换", due=due.isoformat(),
        closed=closed.isoformat())  # fmt: skip
