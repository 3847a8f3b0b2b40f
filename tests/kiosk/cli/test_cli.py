"""The `kiosk` command's shape: every command that opens the database goes through
`Context.store()`, so a damaged database is exit 2 with the way out, never a traceback; and
`kiosk --help` does not load the face or camera libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiosk.cli.main import app
from kiosk.ops.storage import DB_FILE, open_store
from tests.support.paths import REPO

PAGE = 4096


@pytest.fixture(scope="module")
def damaged_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose database had its schema pages scribbled over (a bad SD card)."""
    data = tmp_path_factory.mktemp("damaged")
    open_store(data).close()
    db = data / DB_FILE
    raw = bytearray(db.read_bytes())
    raw[PAGE : PAGE * 3] = b"\xa5" * (PAGE * 2)
    db.write_bytes(bytes(raw))
    return data


@pytest.mark.parametrize(
    "command",
    [
        ["sync", "--status"],
        ["sync"],
        ["enroll", "E001", "photo.jpg", "--consent", "同意书-1"],
        ["identify", "photo.jpg"],
        ["unenroll", "E001"],
        ["caregiver", "list"],
        ["export", "monthly", "--month", "2026-11"],
        ["roster", "import", "roster.csv"],
        ["db", "upgrade"],
        ["db", "backup"],
        ["maintenance"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_damaged_database_is_exit_2_with_the_way_out(
    damaged_data: Path, command: list[str]
) -> None:
    before = (damaged_data / DB_FILE).read_bytes()
    result = CliRunner().invoke(
        app, ["--config", str(REPO / "config.yaml"), "--data-dir", str(damaged_data), *command]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert "failed its quick check" in result.output
    assert "kiosk db restore" in result.output
    assert "Traceback" not in result.output
    assert (damaged_data / DB_FILE).read_bytes() == before  # nothing was written into it


@pytest.mark.slow  # runs `kiosk` as a subprocess
def test_the_installed_command_says_so_too(damaged_data: Path) -> None:
    """The same through the real entry point (`python -m kiosk` = kiosk.cli.main:main)."""
    run = subprocess.run(
        [sys.executable, "-m", "kiosk", "--config", str(REPO / "config.yaml"),
         "--data-dir", str(damaged_data), "enroll", "E001", "photo.jpg", "--consent", "x"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "failed its quick check" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow  # runs `kiosk` as a subprocess
def test_help_lists_every_group_without_loading_face_or_camera_libraries() -> None:
    probe = (
        "import sys\n"
        "from kiosk.cli.main import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "heavy = {'cv2', 'dlib', 'numpy', 'face_recognition', 'uvicorn', 'kiosk.runtime.daemon'}\n"
        "print('LOADED', sorted(heavy & set(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    for command in ("run", "db", "roster", "caregiver", "export", "enroll", "identify", "sync"):
        assert f" {command} " in run.stdout, command
    assert "LOADED []" in run.stdout
