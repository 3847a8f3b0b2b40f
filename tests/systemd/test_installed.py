"""The installed path, as a technician meets it: install.sh on a real systemd host, then the
units under their full sandbox (see conftest.py and systemd_host.py for the host)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.support.config import noon_zone
from tests.support.paths import REPO
from tests.systemd.host_setup import (
    BLAS,
    CARD_UID,
    INSTALL_MODE,
    county_config,
    host_workdir,
    install,
    roster_csv,
)
from tests.systemd.systemd_host import SystemdHost, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("systemd")]

PREFIX = "/opt/haolinju-kiosk"
KIOSK = f"{PREFIX}/.venv/bin/kiosk"
STATE = "/var/lib/haolinju-kiosk"
CLI = [KIOSK, "--config", "/etc/haolinju-kiosk/config.yaml", "--data-dir", STATE]


def main_pid(host: SystemdHost) -> int:
    return int(host.show("kiosk.service", "MainPID")["MainPID"])


def wait_serving(host: SystemdHost, old_pid: int = 0, timeout: float = 90) -> int:
    """Wait until kiosk.service is active (READY=1 received) with a main PID other than old_pid."""

    def serving() -> bool:
        props = host.show("kiosk.service", "ActiveState", "SubState", "MainPID")
        return (
            props["ActiveState"] == "active"
            and props["SubState"] == "running"
            and int(props["MainPID"]) not in (0, old_pid)
        )

    wait_for(serving, timeout, "kiosk.service to be active (READY=1)")
    return main_pid(host)


def http_get(host: SystemdHost, path: str) -> tuple[int, str]:
    result = host.run(
        ["curl", "-s", "-m", "10", "-w", "\n%{http_code}", f"http://127.0.0.1:8080{path}"],
        check=False,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body


def meal_count(host: SystemdHost) -> int:
    out = host.run(
        ["sqlite3", f"file:{STATE}/kiosk.db?mode=ro", "SELECT count(*) FROM meal_record"]
    )
    return int(out.stdout.strip())


def tap_card(host: SystemdHost, uid: str = CARD_UID, hold_s: float = 2.0) -> None:
    """Present the virtual card on vpcd slot 0 from inside the host (its network namespace)."""
    script = (
        "import time\nfrom hardware.vpcd_card import VirtualCard\n"
        f"with VirtualCard({uid!r}).insert(timeout_s=20):\n    time.sleep({hold_s})\n"
    )
    host.run([f"{PREFIX}/.venv/bin/python", "-I", "-c", script], timeout=60)


def proc_status(host: SystemdHost, pid: int) -> dict[str, str]:
    text = host.path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_venv_interpreter_is_the_system_python(installed_host: SystemdHost) -> None:
    real = installed_host.run(["readlink", "-f", f"{PREFIX}/.venv/bin/python"]).stdout.strip()
    assert real == "/usr/bin/python3.11"
    # Nothing in the venv points into root's home.
    cfg = installed_host.path(f"{PREFIX}/.venv/pyvenv.cfg").read_text()
    assert "/root" not in cfg, cfg
    installed_host.run(["runuser", "-u", "kiosk", "--", KIOSK, "--help"])


def test_dlib_is_the_build_the_install_mode_asks_for(installed_host: SystemdHost) -> None:
    out = installed_host.run(
        [f"{PREFIX}/.venv/bin/python", "-I", "-c", "import dlib; print(dlib.DLIB_USE_BLAS)"]
    ).stdout.strip()
    assert out == str(BLAS), f"--no-blas={not BLAS} but dlib.DLIB_USE_BLAS={out}"


def test_service_ready_as_kiosk_under_its_sandbox(installed_host: SystemdHost) -> None:
    pid = wait_serving(installed_host)
    props = installed_host.show(
        "kiosk.service", "Type", "User", "NRestarts", "StatusText", "UnitFileState"
    )
    assert props["Type"] == "notify"
    assert props["UnitFileState"] == "enabled"
    assert props["StatusText"].startswith("serving on http://127.0.0.1:8080/"), props
    status = proc_status(installed_host, pid)
    kiosk_uid = installed_host.run(["id", "-u", "kiosk"]).stdout.strip()
    assert status["Uid"].split()[0] == kiosk_uid
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # SystemCallFilter= in force
    assert int(status["CapEff"], 16) == 0
    environ = installed_host.path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    creds = [e.decode() for e in environ if e.startswith(b"CREDENTIALS_DIRECTORY=")]
    assert creds == ["CREDENTIALS_DIRECTORY=/run/credentials/kiosk.service"]
    # Seen from inside the service's own mount namespace: readable by the service user only.
    listed = installed_host.run(
        ["nsenter", "-t", str(pid), "-m", "stat", "-c", "%n %U %a",
         *(f"/run/credentials/kiosk.service/{c}" for c in ("device-key", "device-token", "face-key"))]
    ).stdout.split("\n")  # fmt: skip
    owners = {line.rsplit("/", 1)[-1] for line in listed if line}
    assert owners == {"device-key kiosk 400", "device-token kiosk 400", "face-key kiosk 400"}, (
        listed
    )
    # The venv's code is root's: the kiosk user cannot rewrite what it runs.
    probe = installed_host.run(
        ["runuser", "-u", "kiosk", "--", "touch", f"{PREFIX}/.venv/bin/kiosk"], check=False
    )
    assert probe.returncode != 0


def test_page_answers_on_loopback(installed_host: SystemdHost) -> None:
    wait_serving(installed_host)
    code, body = http_get(installed_host, "/")
    assert code == 200
    assert "好邻居助老小院" in body
    code, body = http_get(installed_host, "/api/health")
    assert code == 200, body
    health = json.loads(body)
    assert "speaker" in json.dumps(health)
    # aplay installed, kiosk in the audio group: the speaker has a player (the host has no
    # sound card, so only the player's presence is checked, not sound).
    assert "no_player" not in json.dumps(health), health


def test_card_on_pcsc_reader_becomes_a_meal_record(installed_host: SystemdHost) -> None:
    host = installed_host
    wait_serving(host)
    host.path("/var/tmp/roster.csv").write_text(roster_csv())
    host.run(["chmod", "0644", "/var/tmp/roster.csv"])
    host.run(["runuser", "-u", "kiosk", "--", *CLI, "roster", "import", "/var/tmp/roster.csv"])
    before = meal_count(host)
    # pcscd is socket-activated: nothing runs it before the daemon connects.
    assert host.show("pcscd.socket", "ActiveState")["ActiveState"] == "active"
    tap_card(host)
    wait_for(lambda: meal_count(host) == before + 1, 30, "the tap's meal record")
    pcscd = host.show("pcscd.service", "ActiveState")
    assert pcscd["ActiveState"] == "active"
    row = host.run(
        ["sqlite3", f"file:{STATE}/kiosk.db?mode=ro",
         "SELECT elder_id, method, card_uid, reader, slot FROM meal_record ORDER BY seq DESC LIMIT 1"]
    ).stdout.strip()  # fmt: skip
    assert row == f"E0001|card|{CARD_UID}|desk|lunch", row


def test_sigkill_restarts_and_keeps_acknowledged_records(installed_host: SystemdHost) -> None:
    host = installed_host
    pid = wait_serving(host)
    records = meal_count(host)
    assert records >= 1, "run after the card test: there must be a record to keep"
    restarts = int(host.show("kiosk.service", "NRestarts")["NRestarts"])
    host.run(["kill", "-KILL", str(pid)])
    new_pid = wait_serving(host, old_pid=pid)
    assert new_pid != pid
    assert int(host.show("kiosk.service", "NRestarts")["NRestarts"]) == restarts + 1
    assert meal_count(host) == records
    assert http_get(host, "/")[0] == 200


def test_stopped_watchdog_pings_make_systemd_restart_it(installed_host: SystemdHost) -> None:
    host = installed_host
    # The unit's 30 s watchdog, shortened by a drop-in so the test takes seconds; the
    # mechanism (WATCHDOG_USEC from systemd, pings from the main loop) is the shipped one.
    dropin = host.path("/etc/systemd/system/kiosk.service.d/test-watchdog.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nWatchdogSec=6\n")
    try:
        host.systemctl("daemon-reload")
        host.systemctl("restart", "kiosk.service")
        pid = wait_serving(host)
        host.run(["kill", "-STOP", str(pid)])
        new_pid = wait_serving(host, old_pid=pid, timeout=60)
        assert new_pid != pid
        journal = host.journal("kiosk.service", "--since=-2min")
        assert "Watchdog timeout" in journal, journal[-2000:]
    finally:
        dropin.unlink()
        host.systemctl("daemon-reload")
        host.systemctl("restart", "kiosk.service")
    wait_serving(host)


def test_systemctl_stop_is_a_clean_exit(installed_host: SystemdHost) -> None:
    host = installed_host
    wait_serving(host)
    host.systemctl("stop", "kiosk.service")
    props = host.show("kiosk.service", "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    assert props["ActiveState"] == "inactive"
    # Result=timeout would mean SIGKILL after TimeoutStopSec; exit code 0 = the clean path.
    assert props["Result"] == "success", props
    assert props["ExecMainStatus"] == "0", props
    assert "kiosk stopped cleanly" in host.journal("kiosk.service", "-n", "20")
    host.systemctl("start", "kiosk.service")
    wait_serving(host)


def test_maintenance_timer_runs_the_backup(installed_host: SystemdHost) -> None:
    host = installed_host
    timer = host.show(
        "kiosk-maintenance.timer", "ActiveState", "UnitFileState", "NextElapseUSecRealtime", "Unit"
    )
    assert timer.pop("Unit") == "kiosk-maintenance.service"
    assert timer["ActiveState"] == "active" and timer["UnitFileState"] == "enabled", timer
    assert timer["NextElapseUSecRealtime"], timer
    before = set(host.run(["ls", f"{STATE}/backups"], check=False).stdout.split())
    host.systemctl("start", "kiosk-maintenance.service")  # what the timer starts, now
    props = host.show("kiosk-maintenance.service", "Result", "ExecMainStatus")
    assert props == {"Result": "success", "ExecMainStatus": "0"}, props
    after = set(host.run(["ls", f"{STATE}/backups"]).stdout.split())
    assert [name for name in after - before if name.startswith("kiosk-")], (before, after)
    assert "integrity ok" in host.journal("kiosk-maintenance.service", "-n", "20")


def test_journal_holds_the_logs_at_their_levels(installed_host: SystemdHost) -> None:
    host = installed_host
    wait_serving(host)
    lines = [
        json.loads(line)
        for line in host.journal("kiosk.service", "-o", "json", "-n", "400").splitlines()
        if line.startswith("{")
    ]
    by_text = {str(entry.get("MESSAGE")): int(entry.get("PRIORITY", -1)) for entry in lines}
    warning = [
        p
        for text, p in by_text.items()
        if text.startswith("WARNING kiosk.runtime.daemon: sync off")
    ]
    info = [p for text, p in by_text.items() if "serving on http://127.0.0.1:8080/" in text]
    assert warning and set(warning) == {4}, "the 'sync off' warning is not at priority 4"
    assert info and set(info) == {6}
    # -p warning: warnings and errors only, so a technician sees what matters.
    important = host.journal("kiosk.service", "-p", "warning", "-o", "cat")
    assert "sync off" in important and "serving on" not in important


def test_install_again_upgrades_in_place(installed_host: SystemdHost) -> None:
    """A newer release (version bump + one more migration) over the running install."""
    host = installed_host
    old_pid = wait_serving(host)
    records = meal_count(host)
    newer = host.path("/var/tmp/release-0.1.1")
    shutil.rmtree(newer, ignore_errors=True)
    shutil.copytree(
        REPO,
        newer,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "data", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"
        ),
    )
    init = newer / "kiosk" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', '__version__ = "0.1.1"', init.read_text()))
    versions = newer / "models" / "migrations" / "versions"
    head = max(p.name.split("_")[0] for p in versions.glob("[0-9]*.py"))
    (versions / "9999_upgrade_test.py").write_text(
        f'"""upgrade test: a no-op migration"""\n\nrevision = "9999"\ndown_revision = "{head}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    backups_before = set(host.run(["ls", f"{STATE}/backups"], check=False).stdout.split())
    host.run(
        ["bash", "/var/tmp/release-0.1.1/systemd/install.sh", *INSTALL_MODE, "--no-ui"],
        env={"UV_OFFLINE": "1"},
        timeout=900,
    )
    new_pid = wait_serving(host, old_pid=old_pid)
    assert new_pid != old_pid
    version = host.run(
        [f"{PREFIX}/.venv/bin/python", "-I", "-c", "import kiosk; print(kiosk.__version__)"]
    )
    assert version.stdout.strip() == "0.1.1"
    backups = set(host.run(["ls", f"{STATE}/backups"]).stdout.split()) - backups_before
    assert [b for b in backups if b.startswith("pre-migrate-")], backups
    revision = host.run(
        ["sqlite3", f"file:{STATE}/kiosk.db?mode=ro", "SELECT version_num FROM alembic_version"]
    )
    assert revision.stdout.strip() == "9999"
    assert meal_count(host) == records


def test_broken_config_is_refused_before_anything_is_enabled(
    uv_cache_for_system_python: None,
) -> None:
    workdir = host_workdir("host-broken")
    host = SystemdHost(workdir)
    try:
        with host.boot():
            etc = host.path("/etc/haolinju-kiosk")
            etc.mkdir(parents=True)
            broken = county_config(noon_zone()).replace('start: "11:00"', 'start: "25:00"')
            (etc / "config.yaml").write_text(broken)
            result = install(host, "--no-blas", "--no-ui", check=False)
            assert result.returncode != 0
            assert "meal.slots" in result.stdout + result.stderr, result.stderr[-2000:]
            assert "refusing to install" in result.stderr
            for unit in ("kiosk.service", "kiosk-maintenance.timer"):
                state = host.systemctl("is-enabled", unit, check=False).stdout.strip()
                assert state in ("", "not-found", "disabled"), (unit, state)
            assert not host.path("/etc/systemd/system/kiosk.service").exists()
            assert not host.path(PREFIX).exists()
            assert not host.path(PREFIX + ".new").exists()
            assert not host.path("/etc/haolinju-kiosk/credentials").exists()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
