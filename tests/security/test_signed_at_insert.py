"""Issue 12.6: a record appended with the sqlite3 shell, correctly chained but not signed by the
daemon, is refused by the database, detected by the kiosk (evidence check, doctor) and
rejected by the platform. Before signing at insert, the uploader signed whatever row it found
and the platform accepted the insider's meal as genuine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from kiosk.ops.doctor import Level, check_evidence
from kiosk.ops.provision import provision
from models.tables import MealRecord
from sync.client import PlatformClient
from sync.signing import generate_device_key
from sync.uploader import Uploader
from tests.security.local_evidence import forged_row_sql, make_terminal, sqlite3_shell
from tests.support.platform import Platform, sqlite_url, start_platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("platform-evidence")
    p = start_platform(sqlite_url(workdir), workdir)
    yield p
    p.stop()


def test_each_record_is_signed_in_the_transaction_that_inserts_it(tmp_path: Path) -> None:
    term = make_terminal(tmp_path)
    assert term.tap(1).accepted
    with term.services.store.read() as s:
        rec = s.scalars(select(MealRecord)).one()
    # Signed before any upload, by the data directory's device key.
    assert rec.signature and term.key.record_ok(rec.hash, rec.signature)
    assert term.services.checkin.check_evidence().ok


def test_the_database_refuses_an_unsigned_row_from_the_sqlite3_shell(tmp_path: Path) -> None:
    term = make_terminal(tmp_path)
    assert term.tap(1).accepted
    out = sqlite3_shell(term.db_path, forged_row_sql(term.db_path, "E0002", signature=None))
    assert "signed by the daemon at insert" in out.stderr
    with term.services.store.read() as s:
        assert len(s.scalars(select(MealRecord)).all()) == 1


def test_a_forged_row_is_detected_on_the_kiosk_and_rejected_by_the_platform(
    tmp_path: Path, platform: Platform
) -> None:
    term = make_terminal(tmp_path, platform)
    assert term.tap(1).accepted
    # The insider drops the trigger and appends a chained row; without the device key the best
    # he can do is a signature from another key (or none at all).
    other = generate_device_key(tmp_path / "other.key")
    db = term.db_path
    sql = "DROP TRIGGER meal_record_signed_at_insert;\n"
    with term.services.store.read() as s:
        head = s.scalars(select(MealRecord)).one()
    sql += forged_row_sql(db, "E0002", signature=other.sign_record("0" * 64))
    out = sqlite3_shell(db, sql)
    assert out.returncode == 0, out.stderr
    # ... and one more with no signature at all.
    out = sqlite3_shell(db, forged_row_sql(db, "E0003", signature=None))
    assert out.returncode == 0, out.stderr

    report = term.services.checkin.check_evidence()
    assert not report.ok
    text = " ".join(report.problems)
    assert "seq 2 signature does not verify with the device key" in text
    assert "seq 3 unsigned: not written by the daemon" in text
    assert report.verified_seq == head.seq == 1

    doctor = check_evidence(term.services.store, term.services.checkin.evidence.signature_ok)
    assert doctor.level is Level.FAIL and doctor.blocking
    assert "signature does not verify" in doctor.detail

    result = term.uploader(platform).run_round()
    assert (result.accepted, result.rejected) == (1, 2), result
    held = platform.records(term.device_id)
    assert held["count"] == 1, held
    kinds = {a["kind"] for a in platform.alerts(term.device_id)}
    assert "forged" in kinds


def test_records_made_before_provisioning_stay_valid(tmp_path: Path, platform: Platform) -> None:
    """The daemon signs from the first tap with the data directory's key; provisioning then
    registers that same key, so the meals recorded before it upload as genuine."""
    term = make_terminal(tmp_path)  # not registered yet
    assert term.tap(1).accepted and term.tap(2).accepted
    point = "pt-" + term.device_id[-8:]
    code = platform.enrolment_code(point)
    done = provision(
        platform.url, term.device_id, point, code, tmp_path / "cred",
        adopt_key=tmp_path / "data" / "keys" / "device.key",
    )  # fmt: skip
    assert done.newly_registered
    assert (tmp_path / "cred" / "device-key").read_bytes() == (
        tmp_path / "data" / "keys" / "device.key"
    ).read_bytes()
    token = (tmp_path / "cred" / "device-token").read_text().strip()
    client = PlatformClient(platform.url, token)
    result = Uploader(term.services.store, client, term.key, term.device_id).run_round()
    client.close()
    assert (result.accepted, result.rejected) == (2, 0), result
