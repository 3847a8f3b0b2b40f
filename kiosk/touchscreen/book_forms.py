"""How each kind of book entry is entered on the touchscreen, by touch alone.

A terminal has no keyboard, and Chinese cannot be typed without one. So every field is one of:
`digits` (the on-screen digit pad: amounts, quantities), `date` (a digit pad laid out for a
date, with 今天/昨天), `choice` (a row of big buttons), or `pick` (buttons from a list that grows
with what was entered before: items, suppliers, donors, payers), where a new name can still be
typed when a keyboard is plugged in (the technician's USB keyboard). kiosk/static/touchpad.js
draws the pads; the rules stay in kiosk/touchscreen/books.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.touchscreen.books import (
    DONOR_TYPES,
    EXPENSE_CATEGORIES,
    FOOD_TYPES,
    INCOME_SOURCES,
    PAYER_RELATIONS,
    Entry,
)

UNITS = ("斤", "公斤", "个", "盒", "袋", "桶", "瓶", "箱", "把", "度", "吨", "次", "月")
COMMON_ITEMS = {
    "肉": ("猪肉", "鸡肉", "牛肉", "鱼", "排骨"),
    "蛋": ("鸡蛋", "鸭蛋"),
    "奶": ("牛奶", "酸奶", "奶粉"),
    "蔬菜": ("白菜", "土豆", "萝卜", "西红柿", "黄瓜", "豆角", "青菜", "豆腐"),
    "粮油": ("大米", "面粉", "挂面", "食用油", "小米"),
    "调料": ("盐", "酱油", "醋"),
    "燃料": ("液化气", "煤", "电费"),
    "水电": ("电费", "水费"),
    "设备": ("餐具", "消毒柜", "灭火器"),
}
INSPECTOR_ROLES = ("片长", "包村领导", "乡镇干部", "其他")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    widget: str  # digits | date | choice | pick | text
    options: tuple[str, ...] = ()
    required: bool = True
    # Show only when another field has one of these values: (field, values).
    when: tuple[str, tuple[str, ...]] | None = None
    option_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KindForm:
    kind: str
    title: str
    fields: tuple[Field, ...]


def _date(label: str = "日期", name: str = "date", required: bool = True) -> Field:
    return Field(name, label, "date", required=required)


FORMS: dict[str, KindForm] = {
    "expense": KindForm(
        "expense",
        "记一笔开支（采购）",
        (
            _date("采购日期"),
            Field("category", "类别", "choice", EXPENSE_CATEGORIES),
            Field("food_type", "食材种类", "choice", FOOD_TYPES, when=("category", ("食材",))),
            Field("item", "品名", "pick"),
            Field("quantity", "数量", "digits", required=False),
            Field("unit", "单位", "choice", UNITS, required=False),
            Field("amount", "金额（元）", "digits"),
            Field("supplier", "供应商", "pick", required=False),
            Field("buyer", "采购人", "pick"),
        ),
    ),
    "income": KindForm(
        "income",
        "记一笔收入",
        (
            _date("到账日期"),
            Field("source", "来源", "choice", INCOME_SOURCES),
            Field("amount", "金额（元）", "digits"),
            Field("note", "说明", "pick", required=False),
        ),
    ),
    "donation": KindForm(
        "donation",
        "登记捐赠",
        (
            _date("捐赠日期"),
            Field("donor", "捐赠人", "pick"),
            Field("donor_type", "个人或企业", "choice", DONOR_TYPES),
            Field(
                "what",
                "捐赠",
                "choice",
                ("money", "goods"),
                option_labels={"money": "钱", "goods": "物"},
            ),
            Field("amount", "金额（元）", "digits", when=("what", ("money",))),
            Field("goods", "物品", "pick", when=("what", ("goods",))),
            Field("quantity", "数量", "digits", required=False, when=("what", ("goods",))),
            Field("unit", "单位", "choice", UNITS, required=False, when=("what", ("goods",))),
            _date("接收仪式日期", "ceremony_date", required=False),
            Field("purpose", "用途", "pick", required=False),
        ),
    ),
    "meal_fee": KindForm(
        "meal_fee",
        "登记伙食费",
        (
            _date("缴费日期"),
            Field("elder_id", "老人", "elder"),
            Field("month", "哪个月的伙食费", "month"),
            Field("payer_relation", "谁缴的", "choice", PAYER_RELATIONS),
            Field("payer_name", "缴费人姓名", "pick"),
            Field("amount", "金额（元）", "digits"),
        ),
    ),
    "health_check": KindForm(
        "health_check",
        "登记护理员健康证",
        (
            Field("caregiver_id", "护理员", "caregiver"),
            _date("体检日期"),
            _date("有效期至", "expires"),
            Field("certificate", "健康证编号", "digits", required=False),
        ),
    ),
    "patrol": KindForm(
        "patrol",
        "登记乡镇巡查",
        (
            _date("检查日期"),
            Field("inspector", "检查人", "pick"),
            Field("role", "职务", "choice", INSPECTOR_ROLES, required=False),
            Field("findings", "检查情况", "pick"),
            Field("hazards", "发现的隐患", "pick", required=False),
            Field("rectification", "整改措施", "pick", required=False),
            _date("整改期限", "due", required=False),
            _date("整改完成日期", "closed", required=False),
        ),
    ),
    "cleaning_procedure": KindForm(
        "cleaning_procedure",
        "助洁程序、内容和时间",
        (
            Field("procedure", "助洁程序", "pick"),
            Field("content", "助洁内容", "pick"),
            Field("hours", "助洁时间", "pick"),
        ),
    ),
    "notice_posted": KindForm(
        "notice_posted",
        "公示已张贴",
        (_date("张贴日期"), Field("month", "哪个月的公示", "month")),
    ),
}

# Phrases a caregiver picks instead of typing (a keyboard can still add new ones).
STOCK_PHRASES = {
    "findings": ("厨房整洁，台账齐全", "留样规范", "消防设施完好"),
    "hazards": ("灭火器过期", "电线老化", "燃气管道老化", "安全出口堵塞"),
    "rectification": ("已更换", "已维修", "已清理", "已报告村委会"),
    "purpose": ("改善伙食", "添置餐具", "添置设备"),
    "note": ("县级补贴", "乡镇补贴"),
    "procedure": ("预约登记—上门服务—老人确认签字",),
    "content": ("打扫卫生、清洗衣物、整理床铺",),
    "hours": ("每周二、周五 下午2点至4点",),
}


def pick_extras(field_name: str, caregivers: dict[str, str]) -> tuple[str, ...]:
    """Buttons that do not come from earlier entries: common items, the caregivers' names."""
    if field_name in ("item", "goods"):
        return tuple(dict.fromkeys(i for items in COMMON_ITEMS.values() for i in items))
    if field_name == "buyer":
        return tuple(caregivers.values())
    return ()


def pick_options(
    field_name: str, entries: list[Entry], kind: str, extra: tuple[str, ...] = ()
) -> list[str]:
    """Buttons for a `pick` field: what was entered before (newest first), then stock phrases."""
    seen: list[str] = []
    for e in reversed(entries):
        value = str(e.body.get(field_name) or "")
        if e.kind == kind and value and value not in seen:
            seen.append(value)
    for value in (*extra, *STOCK_PHRASES.get(field_name, ())):
        if value not in seen:
            seen.append(value)
    return seen[:40]
