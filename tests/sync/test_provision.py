"""`kiosk provision` against the reference platform: a one-time enrolment code read from a file
or stdin, register once, safe to run twice, and retryable after a lost answer."""

from __future__ import annotations

import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from sync.signing import load_device_key, load_or_generate_device_key
from tests.support.config import BASE_CONFIG
from tests.support.paths import REPO
from tests.support.platform import Platform

POINT = "ZY-TEST-001"  # BASE_CONFIG's site.point_id


def config_for(device_id: str) -> str:
    return BASE_CONFIG.replace("test-terminal", device_id)


def provision(
    tmp_path: Path, platform: Platform, code: str | None, *extra: str,
    config_text: str = BASE_CONFIG, stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`kiosk provision` with the code in a 0600 file (or on stdin when `stdin` is given)."""
    config = tmp_path / "config.yaml"
    config.write_text(config_text, encoding="utf-8")
    source = "-"
    if code is not None:
        code_file = tmp_path / "code.txt"
        code_file.unlink(missing_ok=True)
        code_file.touch(mode=0o600)
        code_file.write_text(code + "\n")
        source = str(code_file)
    return subprocess.run(
        [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir", str(tmp_path / "d"),
         "provision", "--platform", platform.url, "--code-file", source,
         "--credentials-dir", str(tmp_path / "cred"), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=60, input=stdin,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_provision_registers_stores_0600_and_is_idempotent(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    cred = tmp_path / "cred"
    cred.mkdir()
    (cred / "device-key").touch(mode=0o600)  # install.sh's empty placeholder
    device_id = "t-" + uuid.uuid4().hex[:8]
    text = config_for(device_id)

    first = provision(tmp_path, sqlite_platform, sqlite_platform.enrolment_code(POINT),
                      config_text=text)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "registered now" in first.stdout
    assert f"device id      {device_id}" in first.stdout
    for name in ("device-key", "device-token"):
        assert stat.S_IMODE((cred / name).stat().st_mode) == 0o600
    token = (cred / "device-token").read_text().strip()
    key = load_device_key(cred / "device-key")
    # The platform now knows the device by this token: a device-authenticated call works,
    # and a made-up token does not.
    url = f"{sqlite_platform.url}/v1/reconcile/2026-12-02/seqs"
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Bearer made-up"}).status_code == 401

    # Run again (even with a code that means nothing): nothing is sent, nothing changes.
    second = provision(tmp_path, sqlite_platform, "WHATEVER", config_text=text)
    assert second.returncode == 0, second.stderr
    assert "already provisioned, unchanged" in second.stdout
    assert (cred / "device-token").read_text().strip() == token
    assert load_device_key(cred / "device-key").public_key_b64 == key.public_key_b64
    fingerprint_line = [ln for ln in first.stdout.splitlines() if "fingerprint" in ln]
    assert fingerprint_line and fingerprint_line[0] in second.stdout


def test_code_from_stdin(tmp_path: Path, sqlite_platform: Platform) -> None:
    text = config_for("t-" + uuid.uuid4().hex[:8])
    code = sqlite_platform.enrolment_code(POINT)
    done = provision(tmp_path, sqlite_platform, None, config_text=text, stdin=code + "\n")
    assert done.returncode == 0, done.stderr
    assert "registered now" in done.stdout


def test_wrong_code_token_on_argv_and_mismatched_device_id_are_refused(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    text = config_for("t-" + uuid.uuid4().hex[:8])
    refused = provision(tmp_path, sqlite_platform, "AAAA-BBBB-CCCC", config_text=text)
    assert refused.returncode == 1
    assert "refused the enrolment code" in refused.stderr
    assert "unknown enrolment code" in refused.stderr
    assert not (tmp_path / "cred" / "device-token").exists()

    # A code issued for another meal point does not enrol this one.
    other_point = sqlite_platform.enrolment_code("ZY-OTHER-" + uuid.uuid4().hex[:4])
    elsewhere = provision(tmp_path, sqlite_platform, other_point, config_text=text)
    assert elsewhere.returncode == 1
    assert "for meal point ZY-OTHER-" in elsewhere.stderr

    # A secret on the command line is refused before anything happens.
    argv = provision(tmp_path, sqlite_platform, None, "--token", "secret", config_text=text)
    assert argv.returncode == 2
    assert "visible in `ps`" in argv.stderr

    code = sqlite_platform.enrolment_code(POINT)
    other = provision(tmp_path, sqlite_platform, code, "--device-id", "someone-else",
                      config_text=text)  # fmt: skip
    assert other.returncode == 2
    assert "differs from device.device_id" in other.stderr


def test_retry_after_a_lost_answer_succeeds(tmp_path: Path, sqlite_platform: Platform) -> None:
    """Issue 12, point 2: the platform stored the device, the answer never arrived; running
    provision again with the same code and key gets a token (it used to be refused)."""
    device_id = "t-" + uuid.uuid4().hex[:8]
    cred = tmp_path / "cred"
    key = load_or_generate_device_key(cred / "device-key")
    code = sqlite_platform.enrolment_code(POINT)
    lost = httpx.post(
        f"{sqlite_platform.url}/v1/devices",
        json={"device_id": device_id, "point_id": POINT, "public_key": key.public_key_b64},
        headers={"Authorization": f"Bearer {code}"},
    )
    assert lost.status_code == 201, lost.text  # ... and the answer is "lost": not stored

    retry = provision(tmp_path, sqlite_platform, code, config_text=config_for(device_id))
    assert retry.returncode == 0, retry.stderr
    assert "registered now" in retry.stdout
    token = (cred / "device-token").read_text().strip()
    url = f"{sqlite_platform.url}/v1/reconcile/2026-12-02/seqs"
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # The token of the lost answer is void: only one token per device works.
    lost_token = lost.json()["token"]
    assert httpx.get(url, headers={"Authorization": f"Bearer {lost_token}"}).status_code == 401


def test_doctor_checks_platform_clock_and_credentials(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    text = config_for("doctor-" + uuid.uuid4().hex[:6])
    first = provision(tmp_path, sqlite_platform, sqlite_platform.enrolment_code(POINT),
                      config_text=text)  # fmt: skip
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
    (forged / "device-token").chmod(0o600)  # private, just not the platform's
    bad = doctor(forged)
    assert "credentials" in bad.stdout and "auth" in bad.stdout, bad.stdout


def test_a_token_file_others_could_swap_or_read_is_refused(
    tmp_path: Path, sqlite_platform: Platform
) -> None:
    """The credentials are read like every secret (kiosk.secret_files): a token that is a
    symlink (anyone who can point it elsewhere decides what "already provisioned" means) or
    that others may read is refused with what to do, not taken as provisioned."""
    cred = tmp_path / "cred"
    cred.mkdir(mode=0o700)
    elsewhere = tmp_path / "planted-token"
    elsewhere.write_text("planted\n")
    (cred / "device-token").symlink_to(elsewhere)
    text = config_for("t-" + uuid.uuid4().hex[:8])
    linked = provision(tmp_path, sqlite_platform, "WHATEVER", config_text=text)
    assert linked.returncode == 1, linked.stdout
    assert "is a symlink" in linked.stderr
    assert "already provisioned" not in linked.stdout

    (cred / "device-token").unlink()
    (cred / "device-token").write_text("old-token\n")
    (cred / "device-token").chmod(0o644)
    readable = provision(tmp_path, sqlite_platform, "WHATEVER", config_text=text)
    assert readable.returncode == 1, readable.stdout
    assert "chmod 600" in readable.stderr
