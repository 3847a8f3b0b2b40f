"""`kiosk provision` against the reference platform: register once, safe to run twice."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import httpx

from sync.signing import load_device_key
from tests.conftest import BASE_CONFIG, REPO
from tests.sync.conftest import ADMIN_TOKEN, Platform


def provision(
    tmp_path: Path, platform: Platform, token: str = ADMIN_TOKEN, *extra: str,
    config_text: str = BASE_CONFIG,
):  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(config_text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir", str(tmp_path / "d"),
         "provision", "--platform", platform.url, "--token", token,
         "--credentials-dir", str(tmp_path / "cred"), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_provision_registers_stores_0600_and_is_idempotent(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    cred = tmp_path / "cred"
    cred.mkdir()
    (cred / "device-key").touch(mode=0o600)  # install.sh's empty placeholder

    first = provision(tmp_path, sqlite_platform)
    assert first.returncode == 0, first.stderr
    assert "registered now" in first.stdout
    assert "device id      test-terminal" in first.stdout
    for name in ("device-key", "device-token"):
        assert stat.S_IMODE((cred / name).stat().st_mode) == 0o600
    token = (cred / "device-token").read_text().strip()
    key = load_device_key(cred / "device-key")
    # The platform now knows the device by this token: a device-authenticated call works,
    # and a made-up token does not.
    url = f"{sqlite_platform.url}/v1/reconcile/2026-12-02/seqs"
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Bearer made-up"}).status_code == 401

    second = provision(tmp_path, sqlite_platform)
    assert second.returncode == 0, second.stderr
    assert "already provisioned, unchanged" in second.stdout
    assert (cred / "device-token").read_text().strip() == token
    assert load_device_key(cred / "device-key").public_key_b64 == key.public_key_b64
    fingerprint_line = [ln for ln in first.stdout.splitlines() if "fingerprint" in ln]
    assert fingerprint_line and fingerprint_line[0] in second.stdout


def test_wrong_operator_token_and_mismatched_device_id_are_refused(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    refused = provision(tmp_path, sqlite_platform, "not-the-token")
    assert refused.returncode == 1
    assert "refused the provisioning token" in refused.stderr
    assert not (tmp_path / "cred" / "device-token").exists()

    other = provision(tmp_path, sqlite_platform, ADMIN_TOKEN, "--device-id", "someone-else")
    assert other.returncode == 2
    assert "differs from device.device_id" in other.stderr


def test_doctor_checks_platform_clock_and_credentials(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    # Its own device id: the session's platform already knows test-terminal.
    text = BASE_CONFIG.replace("test-terminal", "doctor-terminal")
    first = provision(tmp_path, sqlite_platform, config_text=text)
    assert first.returncode == 0, first.stderr
    config = tmp_path / "config.yaml"
    config.write_text(text + f"platform: {{url: {sqlite_platform.url}}}\n", encoding="utf-8")

    def doctor(cred_dir: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir", str(tmp_path / "d"), "doctor"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
            env={"COLUMNS": "220", "PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(cred_dir)},
        )  # fmt: skip

    good = doctor(tmp_path / "cred")
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"{sqlite_platform.url} reachable" in good.stdout
    assert "the platform accepts this terminal's token" in good.stdout
    assert "clock vs platform" in good.stdout

    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "device-token").write_text("not-a-real-token")
    bad = doctor(forged)
    assert "credentials" in bad.stdout and "auth" in bad.stdout, bad.stdout
