"""The notice board: the monthly diner list (totals, CSV, XLSX, HTML, CLI) and the weekly menu."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kiosk.api.factory import create_app
from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.cli.main import app as cli_app
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook
from kiosk.touchscreen.notices import chart_svg, monthly_report
from tests.support.config import BASE_CONFIG
from tests.support.roster import TZ, Clock, elder_row
from tests.support.ui import PIN, csrf_of
from tests.support.ui import try_sign_in as sign_in


def eat(services: KioskServices, clock: Clock, n: int, day: int, hhmm: str = "11:30") -> None:
    h, m = map(int, hhmm.split(":"))
    clock.now = dt.datetime(2026, 11, day, h, m, tzinfo=TZ)
    result = services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=elder_row(n).card_uid))
    assert result.accepted, result.message


@pytest.fixture
def november(services: KioskServices, clock: Clock) -> None:
    """王秀英: 3 days, 4 meals (one breakfast); 李建国: 2 days, 2 meals. 7 Dec is outside."""
    for day in (3, 4, 20):
        eat(services, clock, 1, day)
    eat(services, clock, 1, 4, "07:30")
    for day in (4, 30):
        eat(services, clock, 2, day)
    clock.now = dt.datetime(2026, 12, 7, 11, 30, tzinfo=TZ)
    eat_dec = CheckinRequest(Method.CARD, card_uid=elder_row(2).card_uid)
    assert services.checkin.check_in(eat_dec).accepted


@pytest.fixture
def client(services: KioskServices) -> Iterator[TestClient]:
    CaregiverBook(services.store, services.config.ui, services.now).add("孙桂香", PIN)
    with TestClient(create_app(services)) as client:
        yield client


@pytest.mark.usefixtures("november")
def test_monthly_totals(services: KioskServices) -> None:
    report = monthly_report(services.store, 2026, 11)
    rows = {r.name: r for r in report.rows}
    assert (rows["王秀英"].days, rows["王秀英"].meals) == (3, 4)
    assert (rows["李建国"].days, rows["李建国"].meals) == (2, 2)
    assert rows["王秀英"].id_number == "1411**********0000"
    assert (report.total_meals, report.total_days, report.days_in_month) == (6, 5, 30)
    assert report.slots == ["breakfast", "lunch"]
    assert (report.slot_total("lunch"), report.day_total(4)) == (5, 3)
    svg = chart_svg(report)
    assert svg.startswith("<svg") and svg.count("<rect") >= 5 and "午餐 5 人次" in svg


@pytest.mark.usefixtures("november")
def test_csv_and_xlsx_exports(client: TestClient) -> None:
    resp = client.get("/notices/monthly.csv", params={"month": "2026-11"})
    text = resp.content.decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[0] == "2026年11月用餐人员明细"
    assert lines[1].startswith(
        "序号,姓名,村民小组,身份证号,用餐天数,早餐次数,午餐次数,用餐总次数,1,2,3"
    )
    assert lines[-1].startswith("合计,2人,,,5,1,5,6,")
    resp = client.get("/notices/monthly.xlsx", params={"month": "2026-11"})
    ws = openpyxl.load_workbook(io.BytesIO(resp.content)).active
    cells = list(ws.iter_rows(values_only=True))
    assert cells[1][:8] == (
        "序号",
        "姓名",
        "村民小组",
        "身份证号",
        "用餐天数",
        "早餐次数",
        "午餐次数",
        "用餐总次数",
    )
    assert cells[2][1] == "王秀英" and cells[2][7] == 4
    assert cells[-1][0] == "合计" and cells[-1][7] == 6


@pytest.mark.usefixtures("november")
def test_monthly_page(client: TestClient) -> None:
    html = client.get("/notices/monthly", params={"month": "2026-11"}).text
    assert "2026年11月用餐人员明细" in html and "<svg" in html
    assert '<b id="total-meals">6</b>' in html
    assert client.get("/notices/monthly", params={"month": "2026-13"}).status_code == 422


@pytest.mark.usefixtures("november")
def test_cli_export_in_three_formats(services: KioskServices, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG, encoding="utf-8")
    data_dir = services.data_dir
    base = ["--config", str(config), "--data-dir", str(data_dir), "export", "monthly"]
    runner = CliRunner()
    for fmt in ("csv", "xlsx", "html"):
        out = tmp_path / f"m.{fmt}"
        result = runner.invoke(
            cli_app, [*base, "--month", "2026-11", "--format", fmt, "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert "2 elders, 6 meals" in result.output
    assert "合计,2人" in (tmp_path / "m.csv").read_text(encoding="utf-8-sig")
    assert openpyxl.load_workbook(tmp_path / "m.xlsx").active.max_row == 5
    html = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert "@page" in html and "王秀英" in html and "<svg" in html
    assert runner.invoke(cli_app, [*base, "--month", "11/2026"]).exit_code == 2


def test_weekly_menu_needs_a_caregiver_and_csrf(client: TestClient) -> None:
    page = client.get("/notices")
    assert "每周食谱" in page.text and "用餐时间" in page.text and "孙桂香" in page.text
    key = "menu|2026-12-02|lunch"
    token = csrf_of(page.text)
    assert client.post("/notices/menu", data={"csrf": token, key: "红烧肉"}).status_code == 401
    assert sign_in(client) == "ok"
    assert client.post("/notices/menu", data={key: "红烧肉"}).status_code == 403
    resp = client.post("/notices/menu", data={"csrf": token, key: "红烧肉 炒白菜 小米粥"})
    assert resp.status_code == 200 and "红烧肉 炒白菜 小米粥" in resp.text
