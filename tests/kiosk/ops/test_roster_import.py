"""Roster files as the county hands them out: CSV/XLSX, English/Chinese headers, UTF-8/GBK."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from hardware.card_uid import UidFormat
from kiosk.ops.roster_import import RosterError, check_id_number, import_roster
from models.db import Store
from models.roster import pinyin_initials
from models.tables import AuditEvent, Card, Elder
from tests.support.paths import REPO
from tests.support.roster import TZ, id_number

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=TZ)


ENGLISH = [
    ["elder_id", "name", "id_number", "card_uid", "group", "contact_phone"],
    ["E0001", "王秀英", id_number("19450302"), "04a23b1c", "一组", "13800000001"],
    ["E0002", "李建国", id_number("19500101"), "", "二组", ""],
]
CHINESE = [
    ["编号", "姓名", "身份证号", "卡号", "组别", "联系电话", "状态", "助餐协议"],
    ["E0003", "张德明", id_number("19480808"), "1C3BA204", "三组", "0358-1234567", "暂停", "是"],
    ["E0004", "刘凤英", id_number("19520229", "456"), "", "一组", "", "正常", "否"],
]


def write_csv(path: Path, rows: list[list[str]], encoding: str) -> Path:
    path.write_bytes("\n".join(",".join(r) for r in rows).encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[str]]) -> Path:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def elders(store: Store) -> dict[str, Elder]:
    with store.read() as s:
        return {e.elder_id: e for e in s.scalars(select(Elder))}


def test_english_csv_utf8(store: Store, tmp_path: Path) -> None:
    report = import_roster(
        store, write_csv(tmp_path / "r.csv", ENGLISH, "utf-8-sig"), UidFormat.HEX, NOW
    )
    assert (report.added, report.updated, report.cards) == (2, 0, 1)
    wang = elders(store)["E0001"]
    assert wang.name == "王秀英"
    assert wang.id_number_masked == "141129********" + ENGLISH[1][2][-4:]  # never the full number
    assert wang.pinyin_initials == "WXY"
    with store.read() as s:
        assert s.get(Card, "04A23B1C").elder_id == "E0001"  # normalised to the roster form


def test_chinese_csv_gbk_with_status_and_agreement(store: Store, tmp_path: Path) -> None:
    import_roster(store, write_csv(tmp_path / "r.csv", CHINESE, "gbk"), UidFormat.HEX, NOW)
    people = elders(store)
    assert people["E0003"].status == "suspended"
    assert people["E0004"].agreement_signed is False
    assert people["E0004"].status == "active"


def test_xlsx(store: Store, tmp_path: Path) -> None:
    report = import_roster(store, write_xlsx(tmp_path / "r.xlsx", CHINESE), UidFormat.HEX, NOW)
    assert report.added == 2
    assert elders(store)["E0003"].group_name == "三组"


def test_reimport_updates_and_audits(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ENGLISH, "utf-8")
    import_roster(store, path, UidFormat.HEX, NOW)
    report = import_roster(store, path, UidFormat.HEX, NOW)
    assert (report.added, report.updated) == (0, 2)
    with store.read() as s:
        assert (
            len(s.scalars(select(AuditEvent).where(AuditEvent.kind == "roster_import")).all()) == 2
        )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (["E0009", "", id_number("19450302"), "", "", ""], "row 3: 姓名 (name) is empty"),
        (["E0009", "赵六", "14112919450302123", "", "", ""],
         "row 3: 身份证号 must be 18 characters: 17 digits and a digit or X"),
        (["E0009", "赵六", id_number("19450302")[:-1] + "0", "", "", ""],
         "row 3: 身份证号 check digit is wrong (a typing error?)"),
        (["E0009", "赵六", "141129194502301230", "", "", ""],
         "row 3: 身份证号 holds an impossible birth date"),
        (["E0001", "赵六", id_number("19450302"), "", "", ""], "row 3: 编号 E0001 repeats row 2"),
        (["E0009", "赵六", id_number("19450302"), "04:A2:3B:1C", "", ""],
         "row 3: 卡号 04:A2:3B:1C repeats row 2"),
        (["E0009", "赵六", id_number("19450302"), "xyz", "", ""],
         "row 3: 卡号 'xyz': "),
        (["E0009", "赵六", id_number("19450302"), "", "", "call me"],
         "row 3: 联系电话 'call me' is not a phone number"),
    ],
)  # fmt: skip
def test_a_bad_row_is_reported_and_nothing_is_applied(
    store: Store, tmp_path: Path, row: list[str], problem: str
) -> None:
    rows = [*ENGLISH[:2], row]
    with pytest.raises(RosterError) as info:
        import_roster(store, write_csv(tmp_path / "r.csv", rows, "utf-8"), UidFormat.HEX, NOW)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(problem)
    assert elders(store) == {}  # the good row 2 was not applied either


def test_missing_and_unknown_columns(store: Store, tmp_path: Path) -> None:
    rows = [["编号", "姓名", "住址"], ["E1", "王", "村东"]]
    with pytest.raises(RosterError) as info:
        import_roster(store, write_csv(tmp_path / "r.csv", rows, "utf-8"), UidFormat.HEX, NOW)
    assert info.value.problems == [
        "row 1: missing column(s) id_number (身份证号)",
        "row 1: unknown column(s) 住址",
    ]


def test_binary_garbage_is_refused(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xff\xfe\x00\x81\x00garbage\x80\x80")
    with pytest.raises(RosterError, match=r"^file is neither UTF-8 nor GBK text$"):
        import_roster(store, path, UidFormat.HEX, NOW)


def test_id_number_checks() -> None:
    assert check_id_number(id_number("19450302")) is None
    assert check_id_number("11010519491231002X") is None  # the standard's own example
    assert pinyin_initials("张德明") == "ZDM"


@pytest.mark.slow  # runs `kiosk` as a subprocess
def test_cli_roster_import(tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", CHINESE, "gbk")
    bad = write_csv(tmp_path / "bad.csv", [*CHINESE, ["E0005", "", "1", "", "", ""]], "gbk")
    base = [sys.executable, "-m", "kiosk", "--config", str(REPO / "config.yaml"),
            "--data-dir", str(tmp_path / "data"), "roster", "import"]  # fmt: skip
    ok = subprocess.run([*base, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "imported 2 elders" in ok.stdout
    refused = subprocess.run([*base, str(bad)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert f"{bad}: row 4: 姓名 (name) is empty" in refused.stderr
    assert "nothing was imported" in refused.stderr
