"""Rendering the console's Jinja2 templates (autoescaped) with what every page shows."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sync.platform.console.auth import csrf_for
from sync.platform.deps import Principal
from sync.platform.settlement import EXCEPTION_LABELS, SERVICE_LABELS, SLOT_LABELS, STATUS_LABELS
from sync.platform.state import PlatformState

HERE = Path(__file__).parent
ROLE_LABELS = {"admin": "县级管理员", "operator": "乡镇操作员"}
ALERT_LABELS = {
    "gap": "记录缺号",
    "hole": "检查点以下记录缺失",
    "records_deleted": "平台记录被删除",
    "edited": "记录被篡改",
    "forged": "签名不符（未知密钥）",
    "fork": "记录分叉",
    "chain_break": "链断裂",
    "checkpoint_conflict": "检查点冲突",
    "id_reuse": "记录编号重复使用",
    "implausible_date": "日期不合理",
    "foreign": "他机记录",
    "manual_share": "人工签到比例偏高",
    "flagged_share": "刷卡未见本人比例偏高",
    "silent_point": "供餐时段无心跳",
    "notice_not_posted": "公示未按时张贴",
    "health_overdue": "健康证过期",
    "clock_unsynced": "时钟未同步的记录",
    "safety_overdue": "安全台账逾期",
}
STATE_LABELS = {"open": "待处理", "ack": "已确认", "resolve": "已解决", "reopen": "待处理"}

CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _when(value: str | None) -> str:
    """An ISO stamp shown in Beijing time, to the minute."""
    if not value:
        return "—"
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if at.tzinfo is not None:
        at = at.astimezone(dt.timezone(dt.timedelta(hours=8)))
    return at.strftime("%Y-%m-%d %H:%M")


env.filters["money"] = _money
env.filters["when"] = _when
env.filters["tojson_pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=1)
env.globals.update(
    SERVICE_LABELS=SERVICE_LABELS,
    SLOT_LABELS=SLOT_LABELS,
    EXCEPTION_LABELS=EXCEPTION_LABELS,
    STATUS_LABELS=STATUS_LABELS,
    ROLE_LABELS=ROLE_LABELS,
    ALERT_LABELS=ALERT_LABELS,
    STATE_LABELS=STATE_LABELS,
)


def render(
    request: Request,
    state: PlatformState,
    template: str,
    who: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    sid: str | None = getattr(request.state, "console_sid", None)
    html = env.get_template(template).render(
        who=who, csrf=csrf_for(state, sid) if sid else "", path=request.url.path, **context
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": CSP,
        },
    )
