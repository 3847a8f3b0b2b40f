"""`kiosk doctor`: the backlog line with unsent records (it used to raise TypeError), and the
evidence check (chain, signatures, outbox) that tells a technician the local records are
inconsistent."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.ops.doctor import Level, check_outbox
from kiosk.runtime.services import KioskServices
from tests.security.local_evidence import forged_row_sql, make_terminal, sqlite3_shell
from tests.support.config import BASE_CONFIG
from tests.support.daemon import kiosk_command
from tests.support.paths import REPO
from tests.support.roster import TZ


def test_backlog_line_with_unsent_records_does_not_crash(services: KioskServices) -> None:
    result = services.checkin.check_in(CheckinRequest(Method.CARD, card_uid="A0000001"))
    assert result.accepted
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=TZ)
    check = check_outbox(services.store, now)
    assert check.name == "unsent records"
    assert check.detail.startswith("1, oldest 1 d 0 h"), check.detail
    assert check.level is Level.WARN  # more than a day old


def test_backlog_line_without_unsent_records(services: KioskServices) -> None:
    check = check_outbox(services.store, dt.datetime(2026, 12, 3, 12, 0, tzinfo=TZ))
    assert (check.level, check.detail) == (Level.OK, "none")


def test_kiosk_doctor_reports_unsent_records_and_a_forged_row(tmp_path: Path) -> None:
    """The command itself, as a technician runs it: no traceback with a backlog, and a row
    appended in the sqlite3 shell turns the 'local evidence' line red (exit 1)."""
    term = make_terminal(tmp_path)
    assert term.tap(1).accepted
    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG.replace("test-terminal", term.device_id), encoding="utf-8")
    term.services.store.close()

    def doctor() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            kiosk_command(config, tmp_path / "data", "doctor"),
            cwd=REPO, capture_output=True, text=True, timeout=120,
            env={**os.environ, "COLUMNS": "250"},
        )  # fmt: skip

    clean = doctor()
    assert "Traceback" not in clean.stderr, clean.stderr
    assert "unsent records" in clean.stdout and "1, oldest" in clean.stdout
    assert "every signature verifies" in clean.stdout, clean.stdout
    assert clean.returncode == 0, clean.stdout + clean.stderr

    out = sqlite3_shell(
        term.db_path,
        "DROP TRIGGER meal_record_signed_at_insert;\n"
        + forged_row_sql(term.db_path, "E0002", signature=None),
    )
    assert out.returncode == 0, out.stderr
    forged = doctor()
    assert forged.returncode == 1, forged.stdout
    assert "seq 2 unsigned: not written by the daemon" in forged.stdout, forged.stdout
