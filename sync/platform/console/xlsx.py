"""The settlement as an XLSX workbook (openpyxl): 汇总, 明细, 例外 and, for a closed month, 签名.

Every text cell is written as text: a name like `=HYPERLINK(...)` stays a string, never a formula
(the same rule as the kiosk's exports, `export-neutralised`)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from sync.platform.settlement import (
    EXCEPTION_LABELS,
    SERVICE_LABELS,
    SLOT_LABELS,
    Settlement,
)

MONEY = "#,##0.00"


def _put(ws: Worksheet, row: list[Any]) -> None:
    ws.append([float(v) if isinstance(v, Decimal) else v for v in row])
    for cell, value in zip(ws[ws.max_row], row, strict=True):
        if isinstance(value, str):
            cell.data_type = "s"  # never a formula, whatever the text starts with
        elif isinstance(value, Decimal):
            cell.number_format = MONEY


def _header(ws: Worksheet, names: list[str]) -> None:
    _put(ws, names)
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)


def write_settlement(
    result: Settlement, out: Path | IO[bytes], point_names: dict[str, str]
) -> None:
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "汇总"
    state = "已结账" if result.closed else "未结账（草稿，数字会随上传变化）"
    _put(summary, [f"{result.month} 助餐补贴月结算", state])
    _header(summary, ["助餐点", "名称", "助餐人次", "助洁人次", "补贴金额（元）", "例外条数"])
    for pt in result.by_point():
        _put(
            summary,
            [
                pt.point_id,
                point_names.get(pt.point_id, ""),
                pt.meals.get("meal", 0),
                pt.meals.get("cleaning", 0),
                pt.amount,
                pt.exceptions,
            ],
        )
    _put(
        summary,
        [
            "合计",
            "",
            sum(ln.count for ln in result.lines if ln.service == "meal"),
            sum(ln.count for ln in result.lines if ln.service == "cleaning"),
            result.total_amount,
            len(result.exceptions),
        ],
    )

    lines = wb.create_sheet("明细")
    _header(
        lines, ["助餐点", "老人编号", "姓名", "服务", "餐次", "标准（元）", "次数", "金额（元）"]
    )
    for ln in result.lines:
        _put(
            lines,
            [
                ln.point_id,
                ln.elder_id,
                ln.elder_name,
                SERVICE_LABELS.get(ln.service, ln.service),
                SLOT_LABELS.get(ln.slot, ln.slot),
                ln.rate if ln.rate is not None else "未配置",
                ln.count,
                ln.amount,
            ],
        )

    excs = wb.create_sheet("例外")
    _header(
        excs, ["助餐点", "日期", "老人编号", "姓名", "服务", "餐次", "类别", "说明", "记录编号"]
    )
    for e in result.exceptions:
        _put(
            excs,
            [
                e.point_id,
                e.service_date.isoformat(),
                e.elder_id,
                e.elder_name,
                SERVICE_LABELS.get(e.service, e.service),
                SLOT_LABELS.get(e.slot, e.slot),
                EXCEPTION_LABELS.get(e.kind, e.kind),
                e.detail,
                e.record_id,
            ],
        )

    if result.closed is not None:
        sig = wb.create_sheet("签名")
        c = result.closed
        for label, value in [
            ("月份", c.month),
            ("结账时间（UTC）", c.closed_at),
            ("结账人", c.closed_by),
            ("补贴人次", str(c.total_meals)),
            ("补贴金额（元）", c.total_amount),
            ("SHA-256", c.digest),
            ("平台签名（Ed25519）", c.signature),
            ("平台公钥", c.public_key),
        ]:
            _put(sig, [label, value])
    for ws in wb.worksheets:
        for col in ws.columns:
            letter = col[0].column_letter
            ws.column_dimensions[letter].width = min(
                60, max(8, *(len(str(c.value or "")) * 1.6 for c in col))
            )
    wb.save(out)
