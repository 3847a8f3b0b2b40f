"""Issue 12.16: roster files in other encodings are refused instead of garbled; card numbers
are stored in the roster's form whatever the source (a signed platform roster too); every
field is bounded; an XLSX whose shared strings inflate to hundreds of MB is refused before
openpyxl reads it. Before: Big5 names were stored as GBK mojibake, a lower-case card from the
platform never matched a tap, a 1M-character name was stored, and one XLSX cost 772 MB."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from hardware.card_uid import UidFormat, normalise
from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.ops.roster_import import RosterError, import_roster
from kiosk.runtime.services import KioskServices
from models.db import Store
from models.migrate import upgrade
from models.tables import Card, Elder
from sync.roster_pull import pull_roster
from sync.signing import PlatformVerifier
from sync.wire import SignedRoster, b64encode, roster_message
from tests.security.big_roster import nth_id_number

NOW = dt.datetime(2026, 12, 2, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
HEADER = "编号,姓名,身份证号,卡号\n"


def _csv(tmp_path: Path, text: str, encoding: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_big5_and_utf16_files_are_refused_not_garbled(store: Store, tmp_path: Path) -> None:
    # English headers, so only the names would show the damage.
    text = f"elder_id,name,id_number\nE1,王秀英,{nth_id_number(1)}\nE2,陳國華,{nth_id_number(2)}\nE3,劉鳳蘭,{nth_id_number(3)}\n"
    with pytest.raises(RosterError, match="neither UTF-8 nor GBK \\(Big5"):
        import_roster(store, _csv(tmp_path, text, "big5"), UidFormat.HEX, NOW)
    with pytest.raises(RosterError, match="UTF-16"):
        import_roster(store, _csv(tmp_path, text, "utf-16"), UidFormat.HEX, NOW)
    with store.read() as s:
        assert s.scalars(select(Elder)).all() == []


def test_gbk_with_rare_characters_still_imports(store: Store, tmp_path: Path) -> None:
    text = (
        HEADER
        + f"E1,王秀英,{nth_id_number(1)},\nE2,李堃,{nth_id_number(2)},\nE3,张喆,{nth_id_number(3)},\n"
    )
    report = import_roster(store, _csv(tmp_path, text, "gbk"), UidFormat.HEX, NOW)
    assert report.added == 3
    with store.read() as s:
        assert sorted(s.scalars(select(Elder.name))) == sorted(["王秀英", "李堃", "张喆"])


def test_oversized_fields_are_refused(store: Store, tmp_path: Path) -> None:
    text = HEADER + f"E1,{'王' * 1_000_000},{nth_id_number(1)},\n"
    with pytest.raises(RosterError) as refused:
        import_roster(store, _csv(tmp_path, text, "utf-8"), UidFormat.HEX, NOW)
    assert refused.value.problems == ["row 2: a field is longer than 131072 characters"]
    text = HEADER + f"E1,{'王' * 65},{nth_id_number(1)},\n"
    with pytest.raises(RosterError) as refused:
        import_roster(store, _csv(tmp_path, text, "utf-8"), UidFormat.HEX, NOW)
    assert refused.value.problems == ["row 2: 姓名 (name) is 65 characters long (at most 64)"]
    text = HEADER + f"E1,王秀英,{nth_id_number(1)},{'A' * 40}\n"
    with pytest.raises(RosterError, match="卡号 \\(card_uid\\) is 40 characters long"):
        import_roster(store, _csv(tmp_path, text, "utf-8"), UidFormat.HEX, NOW)
    # And the database itself refuses what its columns cannot hold, whoever writes.
    conn = sqlite3.connect(store.db_path)
    with pytest.raises(sqlite3.IntegrityError, match="longer than its column"):
        conn.execute(
            "INSERT INTO elder VALUES ('E9', ?, '', '', '', '', 'active', 1, '2026-12-01')",
            ("王" * 1000,),
        )
    conn.close()


XLSX_PARTS = {
    "[Content_Types].xml": """<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
</Types>""",
    "_rels/.rels": """<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="xl/workbook.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>
</Relationships>""",
    "xl/workbook.xml": """<?xml version="1.0" encoding="UTF-8"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"
 xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="roster" sheetId="1" r:id="rId1"/></sheets></workbook>""",
    "xl/_rels/workbook.xml.rels": """<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="worksheets/sheet1.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>
<Relationship Id="rId2" Target="sharedStrings.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>
</Relationships>""",
}
SHEET = """<?xml version="1.0" encoding="UTF-8"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row>
<row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2" t="s"><v>4</v></c><c r="C2" t="s"><v>5</v></c></row>
</sheetData></worksheet>"""


def _xlsx(path: Path, name: str) -> Path:
    """A workbook with a shared-strings table (as Excel and WPS write them)."""
    strings = ["编号", "姓名", "身份证号", "E1", name, nth_id_number(1)]
    table = "".join(f"<si><t>{s}</t></si>" for s in strings)
    shared = (
        '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/'
        f'spreadsheetml/2006/main" count="6" uniqueCount="6">{table}</sst>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for part, text in {**XLSX_PARTS, "xl/worksheets/sheet1.xml": SHEET}.items():
            zf.writestr(part, text)
        zf.writestr("xl/sharedStrings.xml", shared)
    return path


def test_xlsx_with_a_huge_shared_string_is_refused_before_parsing(
    store: Store, tmp_path: Path
) -> None:
    bomb = _xlsx(tmp_path / "bomb.xlsx", "王" * (40 * 1024 * 1024 // 3))  # ~40 MB inflated
    assert bomb.stat().st_size < 2 * 1024 * 1024  # but small on disk
    with pytest.raises(RosterError, match="shared strings inflate to"):
        import_roster(store, bomb, UidFormat.HEX, NOW)
    with store.read() as s:
        assert s.scalars(select(Elder)).all() == []
    small = _xlsx(tmp_path / "small.xlsx", "王秀英")
    assert import_roster(store, small, UidFormat.HEX, NOW).added == 1  # a real one is fine


class SignedRosterSource:
    """The platform's roster endpoint as the kiosk's client sees it: a signed payload."""

    def __init__(self, key: Ed25519PrivateKey, payload: dict[str, object]) -> None:
        text = json.dumps(payload, ensure_ascii=False)
        self.answer = SignedRoster(
            payload=text, signature=b64encode(key.sign(roster_message(text)))
        )

    def roster(self, since: int) -> SignedRoster:
        return self.answer


def test_card_numbers_from_a_signed_roster_match_taps(services: KioskServices) -> None:
    key = Ed25519PrivateKey.generate()
    payload = {
        "point_id": "ZY-TEST-001", "version": 7, "since": 0, "issued_at": NOW.isoformat(),
        "elders": [{"elder_id": "E0042", "name": "赵桂芳", "card_uid": "04a2 3b1c"}],
    }  # fmt: skip
    outcome = pull_roster(
        services.store,
        SignedRosterSource(key, payload),  # type: ignore[arg-type]
        PlatformVerifier(key.public_key()),
        "ZY-TEST-001",
        NOW,
        card_form=lambda uid: normalise(uid, UidFormat.HEX, UidFormat.HEX),
    )
    assert outcome.status == "applied", outcome
    with services.store.read() as s:
        assert s.scalar(select(Card.uid).where(Card.elder_id == "E0042")) == "04A23B1C"
    tap = normalise("04:A2:3B:1C", "hex", UidFormat.HEX)  # what the daemon hands the rules
    assert services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=tap)).accepted

    payload["version"], payload["elders"] = (
        8,
        [{"elder_id": "E0043", "name": "钱", "card_uid": "zz"}],
    )
    refused = pull_roster(
        services.store,
        SignedRosterSource(key, payload),  # type: ignore[arg-type]
        PlatformVerifier(key.public_key()),
        "ZY-TEST-001",
        NOW,
        card_form=lambda uid: normalise(uid, UidFormat.HEX, UidFormat.HEX),
    )
    assert refused.status == "refused" and refused.version == 7
    assert "card number unreadable" in refused.detail


def test_migration_brings_stored_card_numbers_to_the_roster_form(tmp_path: Path) -> None:
    store = Store(tmp_path / "kiosk.db")
    upgrade(store._writer, "0006")
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(
            "INSERT INTO elder VALUES ('E1', '王秀英', '', '', '', 'WXY', 'active', 1, ?)",
            (NOW.isoformat(),),
        )
        conn.execute("INSERT INTO card VALUES (' 04a2 3b1c', 'E1', ?)", (NOW.isoformat(),))
    upgrade(store._writer)
    with store.read() as s:
        assert s.scalars(select(Card.uid)).all() == ["04A23B1C"]
    store.close()
