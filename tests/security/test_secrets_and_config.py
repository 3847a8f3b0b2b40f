"""Secret files, config.yaml and what doctor shows (issue 12.17): a symlinked or world-readable
web secret or device token is refused (and nothing is written through the link); a YAML file
with nested aliases is refused at once with bounded memory, and so is an oversized one; doctor
masks the RTSP password; a plain-http platform and a web server open to the network are warned
about."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kiosk.config import ConfigError, KioskConfig, load_config, load_secret, parse_config
from kiosk.runtime.services import KioskServices
from kiosk.secret_files import SecretFileError
from kiosk.touchscreen.web_auth import SECRET_FILE, load_or_create_secret
from tests.support.config import BASE_CONFIG


def _cli(*args: str) -> Any:
    from kiosk.cli.main import app

    return CliRunner().invoke(app, list(args))


# ----------------------------------------------------------------------------- web secret


def test_symlinked_web_secret_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    target = tmp_path / "precious.txt"
    target.write_bytes(b"not yours")  # short: the old code "regenerated" the key through it
    (data / SECRET_FILE).symlink_to(target)
    with pytest.raises(SecretFileError, match="symlink"):
        load_or_create_secret(data)
    assert target.read_bytes() == b"not yours"


def test_world_readable_web_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRET_FILE
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(SecretFileError, match="0644"):
        load_or_create_secret(tmp_path)


def test_web_secret_is_made_0600_and_kept(tmp_path: Path) -> None:
    key = load_or_create_secret(tmp_path)
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(tmp_path) == key
    (tmp_path / SECRET_FILE).chmod(0o400)
    assert load_or_create_secret(tmp_path) == key


def test_the_app_refuses_to_start_on_a_bad_web_secret(services: KioskServices) -> None:
    from kiosk.api.factory import create_app

    path = services.data_dir / SECRET_FILE
    path.write_bytes(os.urandom(32))
    path.chmod(0o666)
    with pytest.raises(SecretFileError):
        create_app(services)


# ----------------------------------------------------------------------------- device token


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.delenv("KIOSK_DEVICE_TOKEN", raising=False)
    return creds


def test_device_token_modes(credentials: Path) -> None:
    token = credentials / "device-token"
    token.write_text("tok-123\n")
    for mode in (0o600, 0o400, 0o440):  # 0440: systemd's ACL for the service user
        token.chmod(mode)
        assert load_secret("device-token") == "tok-123"
    for mode in (0o644, 0o604, 0o620):
        token.chmod(mode)
        with pytest.raises(SecretFileError, match=f"{mode:04o}"):
            load_secret("device-token")


def test_symlinked_device_token_is_refused(credentials: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.write_text("tok-evil\n")
    real.chmod(0o600)
    (credentials / "device-token").symlink_to(real)
    with pytest.raises(SecretFileError, match="symlink"):
        load_secret("device-token")


def test_kiosk_sync_says_why_the_token_is_refused(
    credentials: Path, tmp_path: Path, store: Any
) -> None:
    token = credentials / "device-token"
    token.write_text("tok-123\n")
    token.chmod(0o644)
    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG + "platform: {url: 'https://county.example'}\n", "utf-8")
    result = _cli("--config", str(config), "--data-dir", str(store.db_path.parent), "sync")
    assert result.exit_code == 2, result.output
    assert "0644" in result.output and "chmod 600" in result.output


# ----------------------------------------------------------------------------- config.yaml


def _laughs(levels: int, fan: int = 10) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]")
    return BASE_CONFIG + "\n".join(lines) + "\n"


def test_nested_aliases_are_refused_with_bounded_memory() -> None:
    text = _laughs(6)  # a million leaves once expanded
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="aliases") as err:
            parse_config(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024, f"{peak / 1e6:.0f} MB to refuse a small file"
    assert err.value.problems[0].line is not None  # says where


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BASE_CONFIG + "# " + "x" * (2 * 1024 * 1024) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


# ----------------------------------------------------------------------------- doctor, warnings


def test_doctor_masks_the_rtsp_password(config: KioskConfig) -> None:
    from kiosk.ops.doctor import check_camera

    camera = config.camera.model_copy(
        update={"enabled": True, "source": "rtsp://admin:S3cr3t-pw@127.0.0.1:9/stream"}
    )
    check = check_camera(config.model_copy(update={"camera": camera}))
    shown = f"{check.detail} {check.fix}"
    assert "S3cr3t-pw" not in shown, shown
    assert "admin:***@127.0.0.1:9" in shown, shown


RISKY = BASE_CONFIG + "web: {host: 0.0.0.0}\nplatform: {url: 'http://county.example'}\n"


def test_validate_config_warns_about_plain_http_and_an_open_web_host(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(RISKY, encoding="utf-8")
    result = _cli("--config", str(path), "validate-config")
    assert result.exit_code == 0, result.output
    assert "platform.url http://county.example is plain http" in result.output
    assert "web.host 0.0.0.0 opens the caregiver pages" in result.output
    # https and loopback: no warning
    path.write_text(BASE_CONFIG + "platform: {url: 'https://county.example'}\n", "utf-8")
    assert "warning" not in _cli("--config", str(path), "validate-config").output


def test_doctor_warns_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.ops import doctor
    from kiosk.ops.storage import open_store

    monkeypatch.setattr(doctor, "check_platform", lambda *_a: [])  # no county.example here
    checks = doctor.run_checks(parse_config(RISKY), tmp_path, lambda: open_store(tmp_path))
    warned = [c.detail for c in checks if c.level == doctor.Level.WARN and c.name == "config"]
    assert len(warned) == 2, warned
