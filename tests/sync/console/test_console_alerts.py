"""Issue 14.1/14.4: alerts on the console — raised by real tampering (rows deleted on the
platform side below a signed checkpoint; a kiosk database edited in the sqlite3 shell), and by
the oversight sweep (manual and flagged shares, clock-unsynced records, a silent point, 公示 not
posted by the 10th, an expired health certificate); acknowledged and resolved with a trail,
only within the operator's township."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from sync.platform.console import oversight
from tests.security.platform_env import TOWNSHIP_B, County
from tests.support.outbox import Kiosk, add_records
from tests.support.platform import ADMIN_TOKEN, Platform
from tests.sync.console.county import SITE, Console, console_for, elder_ids, point, terminal

pytestmark = pytest.mark.slow


def alert_rows(html: str) -> dict[str, str]:
    """alert id -> the row's HTML, from the alerts page."""
    return dict(re.findall(r'<tr data-alert="(\d+)" data-kind="[^"]*">(.*?)</tr>', html, re.S))


def alert_ids(html: str, needle: str) -> list[str]:
    return [i for i, row in alert_rows(html).items() if needle in row]


def test_rows_deleted_on_the_platform_become_a_hole_alert_with_a_trail(county: County) -> None:
    p = point(county)
    t = terminal(county, p)
    (e,) = elder_ids("H", 1)
    t.upload([t.record(dt.date(2026, 11, 2) + dt.timedelta(days=i), e) for i in range(12)])
    t.checkpoint()
    engine = create_engine(county.platform.db_url)
    with engine.begin() as conn:  # the insider's deletion
        n = conn.execute(text("DELETE FROM record WHERE device_id = :d AND seq IN (5, 6)"),
                         {"d": t.device_id}).rowcount  # fmt: skip
    engine.dispose()
    assert n == 2
    county.admin.verify()  # the periodic completeness sweep, run now

    op_a = console_for(county, county.op_a.token)
    op_b = console_for(county, county.op_b.token)
    try:
        page = op_a.get("/console/alerts").text
        [hole] = [
            i for i in alert_ids(page, t.device_id) if "检查点以下记录缺失" in alert_rows(page)[i]
        ]
        row = alert_rows(page)[hole]
        assert '"missing_seqs": [\n  5,\n  6\n ]' in row or "5,\n  6" in row, row
        assert "待处理" in row
        # Township B cannot see it, nor act on it (404: no enumeration).
        assert t.device_id not in op_b.get("/console/alerts?state=all").text
        assert op_b.post(f"/console/alerts/{hole}/act", {"action": "ack"}).status_code == 404
        # Resolving needs a note; acknowledging and resolving leave a trail.
        assert op_a.post(f"/console/alerts/{hole}/act", {"action": "resolve"}).status_code == 422
        r = op_a.post(f"/console/alerts/{hole}/act", {"action": "ack", "note": "已通知乡镇核查"})
        assert r.status_code == 303
        assert hole in alert_ids(op_a.get("/console/alerts?state=ack").text, t.device_id)
        r = op_a.post(f"/console/alerts/{hole}/act",
                      {"action": "resolve", "note": "平台数据库被误删，已从备份恢复"})  # fmt: skip
        assert r.status_code == 303
        assert hole not in alert_rows(op_a.get("/console/alerts").text)  # no longer open
        done = alert_rows(op_a.get("/console/alerts?state=resolve").text)[hole]
        assert "已通知乡镇核查" in done and "已从备份恢复" in done and "已解决" in done
        assert op_a.post(f"/console/alerts/{hole}/act", {"action": "ack"}).status_code == 303
        # A form without the session's CSRF token is refused.
        forged = op_a.http.post(f"/console/alerts/{hole}/act", data={"action": "reopen"})
        assert forged.status_code == 403
    finally:
        op_a.close()
        op_b.close()


def test_oversight_sweep_raises_behaviour_alerts_once(county: County) -> None:
    p, q = point(county), point(county, TOWNSHIP_B)
    tp, tq = terminal(county, p), terminal(county, q, TOWNSHIP_B)
    elders = elder_ids("B", 16)
    day = dt.date(2026, 11, 20)
    records = [tp.record(day, e, method="manual", reason="忘带卡", caregiver="C001")
               for e in elders[:4]]  # fmt: skip
    records += [tp.record(day, e, flags="no_face") for e in elders[4:8]]
    records += [tp.record(day, e) for e in elders[8:15]]
    records += [tp.record(day, elders[15], flags="clock_unsynced")]
    tp.upload(records)
    tp.book("health_check", dt.date(2025, 11, 1), {"caregiver_id": "C001", "certificate": "",
                                                   "expires": "2026-11-30"})  # fmt: skip
    tq.book("notice_posted", dt.date(2026, 12, 3), {"month": "2026-11"})
    tq.heartbeat()

    engine = create_engine(county.platform.db_url)
    sessions = sessionmaker(engine)
    now = dt.datetime(2026, 12, 15, 12, 30, tzinfo=SITE)  # lunch on the 15th
    try:
        query = text("SELECT point_id, kind, evidence FROM alert WHERE point_id IN (:p, :q)")
        oversight.sweep(sessions, now, days=[day])
        with engine.connect() as conn:
            rows = conn.execute(query, {"p": p, "q": q}).all()
        oversight.sweep(sessions, now, days=[day])  # raised once per point and period
        with engine.connect() as conn:
            assert len(conn.execute(query, {"p": p, "q": q}).all()) == len(rows)
    finally:
        engine.dispose()
    kinds = sorted((r.point_id, r.kind) for r in rows)
    assert kinds == sorted([
        (p, "manual_share"), (p, "flagged_share"), (p, "clock_unsynced"), (p, "silent_point"),
        (p, "notice_not_posted"), (p, "health_overdue"), (q, "silent_point"),
    ])  # fmt: skip
    evidence = {r.kind: r.evidence for r in rows if r.point_id == p}
    assert '"manual": 4' in evidence["manual_share"] and '"records": 16' in evidence["manual_share"]
    assert '"flagged": 4' in evidence["flagged_share"] and '"taps": 12' in evidence["flagged_share"]
    assert '"expires": "2026-11-30"' in evidence["health_overdue"]

    admin = Console(county.url)
    try:
        assert admin.login(ADMIN_TOKEN).status_code == 303
        page = admin.get("/console/alerts").text
        for label in ("人工签到比例偏高", "刷卡未见本人比例偏高", "时钟未同步的记录",
                      "公示未按时张贴", "健康证过期", "供餐时段无心跳"):  # fmt: skip
            assert label in page, label
    finally:
        admin.close()


def _edit_locally(db_path: object, sql: str) -> None:
    """Someone with a sqlite3 shell on the terminal: drop the guard, change a row, restore it."""
    conn = sqlite3.connect(str(db_path))
    trigger = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'meal_record_append_only'"
    ).fetchone()[0]
    conn.execute("DROP TRIGGER meal_record_append_only")
    conn.execute(sql)
    conn.execute(trigger)
    conn.commit()
    conn.close()


def test_a_kiosk_database_edited_in_the_shell_shows_on_the_console(
    platform: Platform, kiosk: Kiosk
) -> None:
    add_records(kiosk.store, kiosk.device_id, 8)
    _edit_locally(kiosk.store.db_path, "UPDATE meal_record SET slot = 'dinner' WHERE seq = 4")
    result = kiosk.uploader(platform.url).run_round()
    assert (result.accepted, result.rejected) == (7, 1)

    admin = Console(platform.url)
    try:
        assert admin.login(ADMIN_TOKEN).status_code == 303
        page = admin.get("/console/alerts").text
        [edited] = [i for i in alert_ids(page, kiosk.device_id)
                    if "记录被篡改" in alert_rows(page)[i]]  # fmt: skip
        assert "content does not match its hash" in alert_rows(page)[edited]
        assert "seq 4" in alert_rows(page)[edited]
    finally:
        admin.close()
