"""The status bar of the check-in view: each part of the terminal in plain Chinese, and what to do.

Built from `KioskServices.health()` so the technician's JSON and the caregiver's words never
disagree. Each item: key, state ("ok" green, "off" grey: not in use here, "warn" amber: still
serving, "bad" red), a short text for the bar, and `todo` — one sentence saying what to do,
shown under the bar only when something needs a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from kiosk.runtime.health import Health


@dataclass(frozen=True)
class StatusItem:
    key: str
    state: str  # ok | off | warn | bad
    text: str
    todo: str = ""


def _readers(health: Health) -> StatusItem:
    readers = health.readers
    if not readers:
        return StatusItem("reader", "bad", "没有读卡器", "请技术员在配置里设置读卡器")
    bad = {name: r for name, r in readers.items() if r.state != "ok"}
    if not bad:
        return StatusItem("reader", "ok", "读卡器正常")
    which = "" if len(readers) == 1 else "（" + "、".join(bad) + "）"
    states = {r.state for r in bad.values()}
    if states <= {"absent"}:
        return StatusItem(
            "reader", "bad", f"读卡器未连接{which}", "读卡器未连接，请检查读卡器连线，或拔下再插上"
        )
    if states <= {"starting"}:
        return StatusItem("reader", "warn", f"读卡器启动中{which}", "")
    return StatusItem(
        "reader", "bad", f"读卡器故障{which}", "读卡器故障，请拔下再插上；仍不行请联系技术员"
    )


def _camera(health: Health) -> StatusItem:
    camera, face = health.camera.state, health.face.state
    if camera == "disabled":
        return StatusItem("camera", "off", "未用刷脸")
    if camera == "absent":
        return StatusItem(
            "camera", "bad", "摄像头未连接", "摄像头未连接，请检查摄像头连线；老人可先刷卡"
        )
    if camera in ("error", "stopped"):
        return StatusItem(
            "camera", "bad", "摄像头故障", "摄像头故障，请重新插拔摄像头；老人可先刷卡"
        )
    if face == "error":
        return StatusItem(
            "camera", "bad", "刷脸不可用", "刷脸暂时不能用，请让老人刷卡，并联系技术员"
        )
    if camera == "starting":
        return StatusItem("camera", "warn", "摄像头启动中")
    return StatusItem("camera", "ok", "摄像头正常")


def _platform(health: Health, now: dt.datetime | None) -> StatusItem:
    sync = health.sync
    if sync.state == "off":
        if "provision" in sync.detail:
            return StatusItem(
                "platform",
                "warn",
                "未接入平台",
                "还没有接入县平台，请技术员开通（kiosk provision）",
            )
        return StatusItem("platform", "off", "未接入平台")
    if sync.state == "error":
        return StatusItem(
            "platform", "warn", "平台连不上", "连不上县平台，记录都保存在本机；请检查网络或路由器"
        )
    last = sync.last_success_at
    text = "平台已连接"
    if last is not None and now is not None:
        try:
            minutes = (now - last).total_seconds() / 60
            if minutes > 60:
                text = f"平台 {int(minutes // 60)} 小时未联系"
        except TypeError:  # one aware, one naive: say nothing rather than guess
            pass
    return StatusItem("platform", "ok", text)


def _unsent(health: Health) -> StatusItem:
    pending = health.queue_depth
    rejected = health.rejected or 0
    sync_state = health.sync.state
    if rejected:
        return StatusItem(
            "unsent",
            "bad",
            f"{rejected} 条被退回",
            f"{rejected} 条记录被平台退回，请联系管理员核对",
        )
    if pending is None:
        return StatusItem("unsent", "bad", "记录数不明", "")
    if pending == 0:
        return StatusItem("unsent", "ok", "记录已上传" if sync_state != "off" else "无待传记录")
    if sync_state == "off":
        return StatusItem("unsent", "off", f"本机存 {pending} 条")
    return StatusItem("unsent", "ok" if sync_state == "ok" else "warn", f"{pending} 条待上传")


def _clock(health: Health) -> StatusItem:
    synced = health.clock_synchronised
    if synced is True:
        return StatusItem("clock", "ok", "时钟已同步")
    if synced is False:
        return StatusItem(
            "clock", "bad", "时钟未同步", "时钟没有对准，签到时间可能不对；请检查网络，或联系技术员"
        )
    return StatusItem("clock", "off", "时钟未检查")


def _speaker(health: Health) -> StatusItem:
    state = health.speaker.state
    if state == "disabled":
        return StatusItem("speaker", "off", "语音已关")
    if state == "ok":
        return StatusItem("speaker", "ok", "语音正常")
    if state == "no_player":
        return StatusItem(
            "speaker", "warn", "喇叭不可用", "放不出声音，请检查音箱连线和电源；签到不受影响"
        )
    if state == "no_tts":
        return StatusItem("speaker", "warn", "语音不可用", "缺少语音软件，请技术员安装 espeak-ng")
    if state == "error":
        return StatusItem("speaker", "warn", "喇叭故障", "喇叭出错，请检查音箱连线和音量")
    return StatusItem("speaker", "off", "语音未启动")


def _storage(health: Health) -> StatusItem | None:
    db = health.db
    if not db.ok or db.storage != "ok":
        return StatusItem(
            "storage", "bad", "存储故障", "记录存不进去，请马上联系技术员，先手写登记"
        )
    if db.low_space:
        return StatusItem("storage", "bad", "存储将满", "存储空间快满了，请联系技术员清理")
    return None


def status_items(health: Health, now: dt.datetime | None = None) -> list[StatusItem]:
    items = [
        _readers(health),
        _camera(health),
        _platform(health, now),
        _unsent(health),
        _clock(health),
        _speaker(health),
    ]
    storage = _storage(health)
    return ([storage] if storage else []) + items


def status_bar(
    health: Health, now: dt.datetime | None = None, reminders: list[str] | None = None
) -> dict[str, Any]:
    items = status_items(health, now)
    worst = "bad" if any(i.state == "bad" for i in items) else "ok"
    if worst == "ok" and any(i.state == "warn" for i in items):
        worst = "warn"
    return {
        "state": worst,
        "items": [asdict(i) for i in items],
        "todo": [i.todo for i in items if i.todo and i.state in ("bad", "warn")],
        "reminders": reminders or [],
    }
