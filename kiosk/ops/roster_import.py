"""`kiosk roster import FILE`: the county's roster spreadsheet into the local database.

The county hands rosters out as CSV or XLSX, with English or Chinese headers, in UTF-8 or GBK.
A file is checked whole before anything is applied: one bad row (its row number and what is
wrong) and nothing of the file is written. Then it is applied in short transactions of
IMPORT_CHUNK rows, so that a 100,000-row roster never holds the write lock for more than a
moment: the daemon keeps recording taps and feeding its watchdog during an import.

Hostile or broken files are refused before they can cost memory: the file size, and for XLSX the
uncompressed size of its parts, are checked before parsing; every field is bounded (the
database columns' lengths); a file in another encoding (Big5, UTF-16, Shift-JIS...) is refused
instead of being decoded as GBK into plausible-looking but wrong names.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
import zipfile
from pathlib import Path

from sqlalchemy import select

from hardware.card_uid import InvalidUid, UidFormat, normalise
from models.db import Store
from models.roster import ImportReport, RosterRow, apply_rows
from models.tables import Elder

# Canonical column -> accepted header spellings (case-insensitive, surrounding space ignored).
COLUMNS: dict[str, tuple[str, ...]] = {
    "elder_id": ("elder_id", "编号", "老人编号"),
    "name": ("name", "姓名"),
    "id_number": ("id_number", "身份证号", "身份证号码"),
    "card_uid": ("card_uid", "卡号"),
    "group": ("group", "组别", "村民小组"),
    "contact_phone": ("contact_phone", "联系电话", "家属电话"),
    "status": ("status", "状态"),
    "agreement_signed": ("agreement_signed", "助餐协议", "协议"),
}
REQUIRED = ("elder_id", "name", "id_number")
STATUS_WORDS = {
    "": "active", "active": "active", "正常": "active",
    "suspended": "suspended", "暂停": "suspended",
    "deceased": "deceased", "死亡": "deceased", "已故": "deceased",
    "moved": "moved", "迁出": "moved",
}  # fmt: skip
YES_NO = {
    "": True, "是": True, "已签": True, "yes": True, "y": True, "1": True, "true": True,
    "否": False, "未签": False, "no": False, "n": False, "0": False, "false": False,
}  # fmt: skip
# The database columns' lengths (models/tables.py Elder, Card): longer is refused, not cut.
FIELD_LIMITS = {
    "elder_id": 64, "name": 64, "id_number": 18, "card_uid": 32, "group": 64,
    "contact_phone": 32, "status": 16, "agreement_signed": 16,
}  # fmt: skip
MAX_FILE_BYTES = 32 * 1024 * 1024  # a 100,000-elder roster is ~10 MB of CSV
MAX_XLSX_UNCOMPRESSED = 256 * 1024 * 1024  # all parts of the workbook, inflated
MAX_XLSX_PART = 128 * 1024 * 1024  # one sheet, inflated (100,000 rows are ~40 MB of XML)
# openpyxl holds every shared string in memory even in read-only mode: the part that let one
# "cell" cost 772 MB. 100,000 elders' names, ids and phones are ~10 MB of it.
MAX_SHARED_STRINGS = 32 * 1024 * 1024
# A GBK text's Chinese is overwhelmingly GB2312 level 1 (the 3,755 common characters); Big5 or
# Shift-JIS bytes read as GBK land mostly elsewhere.
MIN_COMMON_HANZI_SHARE = 0.8
IMPORT_CHUNK = 200  # rows per write transaction
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


class RosterError(Exception):
    """The file was refused; `problems` lists each with its row number."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def check_id_number(value: str) -> str | None:
    """Why an 18-digit resident ID number (GB 11643) is invalid, or None if it is valid."""
    if not re.fullmatch(r"\d{17}[\dX]", value):
        return "身份证号 must be 18 characters: 17 digits and a digit or X"
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "身份证号 holds an impossible birth date"
    check = ID_CHECK[sum(int(d) * w for d, w in zip(value[:17], ID_WEIGHTS, strict=True)) % 11]
    if value[17] != check:
        return "身份证号 check digit is wrong (a typing error?)"
    return None


def mask_id_number(value: str) -> str:
    """Keep the region (6) and the last 4: enough to tell people apart, useless to a thief."""
    return value[:6] + "*" * 8 + value[-4:]


def _is_common_hanzi(ch: str) -> bool:
    try:
        code = ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(code) == 2 and 0xB0 <= code[0] <= 0xD7  # GB2312 level 1


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            text = "\x00"
        # A roster in UTF-16 is still mostly digits and commas (ID numbers, phones).
        ascii_share = sum(ch.isascii() for ch in text) / max(len(text), 1)
        if ascii_share > 0.3 and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
            raise RosterError(["file is UTF-16 (Excel's 'Unicode text'): save it as CSV UTF-8"])
        raise RosterError(["file is neither UTF-8 nor GBK text"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")  # a superset of GBK and GB2312
    except UnicodeDecodeError:
        raise RosterError(["file is neither UTF-8 nor GBK text"]) from None
    hanzi = [ch for ch in text if "\u3400" <= ch <= "\u9fff" or ord(ch) > 0xFFFF]
    if hanzi and sum(map(_is_common_hanzi, hanzi)) / len(hanzi) < MIN_COMMON_HANZI_SHARE:
        raise RosterError(
            [
                "file is neither UTF-8 nor GBK (Big5 or another encoding?): its names would be "
                "garbled. Save it as CSV UTF-8 and import again"
            ]
        )
    return text


def _check_xlsx_size(path: Path) -> None:
    """Refuse a workbook whose parts inflate beyond the caps, before openpyxl reads any."""
    try:
        with zipfile.ZipFile(path) as zf:
            parts = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise RosterError([f"cannot open spreadsheet: {exc}"]) from None
    biggest = max(parts, key=lambda p: p.file_size, default=None)
    total = sum(p.file_size for p in parts)
    for part in parts:
        if part.filename.lower().endswith("sharedstrings.xml") and (
            part.file_size > MAX_SHARED_STRINGS
        ):
            raise RosterError(
                [f"spreadsheet's shared strings inflate to {part.file_size} bytes "
                 f"(at most {MAX_SHARED_STRINGS}): not a roster"]
            )  # fmt: skip
    if biggest is not None and biggest.file_size > MAX_XLSX_PART:
        raise RosterError(
            [f"spreadsheet part {biggest.filename} inflates to {biggest.file_size} bytes "
             f"(at most {MAX_XLSX_PART}): not a roster"]
        )  # fmt: skip
    if total > MAX_XLSX_UNCOMPRESSED:
        raise RosterError(
            [f"spreadsheet inflates to {total} bytes (at most {MAX_XLSX_UNCOMPRESSED})"]
        )


def read_table(path: Path) -> list[list[str]]:
    """The sheet as rows of strings, header first."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RosterError([f"cannot read file: {exc}"]) from None
    if size > MAX_FILE_BYTES:
        raise RosterError([f"file is {size} bytes (at most {MAX_FILE_BYTES}): not a roster"])
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        _check_xlsx_size(path)

        try:
            sheet = load_workbook(path, read_only=True, data_only=True).worksheets[0]
        except Exception as exc:  # openpyxl raises many types for a broken file
            raise RosterError([f"cannot open spreadsheet: {exc}"]) from None
        return [
            ["" if v is None else str(v).strip() for v in row]
            for row in sheet.iter_rows(values_only=True)
        ]
    try:
        text = _decode(path.read_bytes())
    except OSError as exc:
        raise RosterError([f"cannot read file: {exc}"]) from None
    reader = csv.reader(io.StringIO(text))
    rows: list[list[str]] = []
    try:
        rows.extend([cell.strip() for cell in row] for row in reader)
    except csv.Error as exc:
        row = f"row {reader.line_num}: "
        if "field larger than field limit" in str(exc):
            limit = csv.field_size_limit()
            raise RosterError([f"{row}a field is longer than {limit} characters"]) from None
        raise RosterError([f"{row}not readable as CSV: {exc}"]) from None
    return rows


def _map_header(header: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    unknown = []
    for i, title in enumerate(header):
        key = title.strip().lower()
        if not key:
            continue
        for canonical, spellings in COLUMNS.items():
            if key in (s.lower() for s in spellings):
                index[canonical] = i
                break
        else:
            unknown.append(title)
    missing = [c for c in REQUIRED if c not in index]
    problems = []
    if missing:
        problems.append(
            "row 1: missing column(s) " + ", ".join(f"{c} ({COLUMNS[c][1]})" for c in missing)
        )
    if unknown:
        problems.append(f"row 1: unknown column(s) {', '.join(unknown)}")
    if problems:
        raise RosterError(problems)
    return index


def _name_problem(name: str) -> str | None:
    if not name:
        return "姓名 (name) is empty"
    if any(unicodedata.category(ch)[0] == "C" or ch == "\ufffd" for ch in name):
        return f"姓名 {name!r} holds control or undecodable characters"
    return None


def _oversized(cells: dict[str, str]) -> list[str]:
    return [
        f"{COLUMNS[column][1]} ({column}) is {len(value)} characters long (at most {limit})"
        for column, limit in FIELD_LIMITS.items()
        if len(value := cells[column]) > limit
    ]


def _check_row(
    cells: dict[str, str],
    card_format: UidFormat,
    seen_ids: dict[str, int],
    seen_cards: dict[str, int],
) -> tuple[RosterRow | None, list[str]]:
    """One row as a RosterRow, or the list of what is wrong with it."""
    if oversized := _oversized(cells):
        return None, oversized  # nothing else is looked at in an oversized row
    elder_id, name, id_number = cells["elder_id"], cells["name"], cells["id_number"].upper()
    errors = []
    if not elder_id:
        errors.append("编号 (elder_id) is empty")
    elif elder_id in seen_ids:
        errors.append(f"编号 {elder_id} repeats row {seen_ids[elder_id]}")
    if why := _name_problem(name):
        errors.append(why)
    if why := check_id_number(id_number):
        errors.append(why)
    card = None
    if raw_card := cells["card_uid"]:
        try:
            card = normalise(raw_card, card_format, card_format)
        except InvalidUid as exc:
            errors.append(f"卡号 {raw_card!r}: {exc}")
        if card in seen_cards:
            errors.append(f"卡号 {raw_card} repeats row {seen_cards[card]}")
    phone = cells["contact_phone"]
    if phone and not re.fullmatch(r"[\d\s+()-]{5,20}", phone):
        errors.append(f"联系电话 {phone!r} is not a phone number")
    status = STATUS_WORDS.get(cells["status"].lower())
    if status is None:
        errors.append(f"状态 {cells['status']!r}: use 正常, 暂停, 已故 or 迁出")
    signed = YES_NO.get(cells["agreement_signed"].lower())
    if signed is None:
        errors.append(f"助餐协议 {cells['agreement_signed']!r}: use 是 or 否")
    if errors or status is None or signed is None:
        return None, errors
    masked = mask_id_number(id_number)
    row = RosterRow(elder_id, name, masked, card, cells["group"], phone, status, signed)
    return row, []


def parse_rows(table: list[list[str]], card_format: UidFormat) -> list[RosterRow]:
    """Validate every row; raise RosterError with all problems found."""
    if not any(any(row) for row in table):
        raise RosterError(["file is empty"])
    index = _map_header(table[0])
    problems: list[str] = []
    parsed: list[RosterRow] = []
    seen_ids: dict[str, int] = {}
    seen_cards: dict[str, int] = {}
    for number, row in enumerate(table[1:], start=2):
        if not any(row):
            continue
        cells = {
            column: (row[index[column]] if column in index and index[column] < len(row) else "")
            for column in COLUMNS
        }
        parsed_row, errors = _check_row(cells, card_format, seen_ids, seen_cards)
        if parsed_row is None:
            problems += [f"row {number}: {e}" for e in errors]
            continue
        seen_ids[parsed_row.elder_id] = number
        if parsed_row.card_uid:
            seen_cards[parsed_row.card_uid] = number
        parsed.append(parsed_row)
    if problems:
        raise RosterError(problems)
    return parsed


def import_roster(
    store: Store, path: Path, card_format: UidFormat, now: dt.datetime
) -> ImportReport:
    """Check the whole file, then apply it in short transactions (IMPORT_CHUNK rows each)."""
    rows = parse_rows(read_table(path), card_format)
    return apply_rows(store, rows, now, source=path.name, chunk_size=IMPORT_CHUNK)


def count_elders(store: Store) -> int:
    with store.read() as session:
        return len(session.scalars(select(Elder.elder_id)).all())
