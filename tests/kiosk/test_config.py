"""config.yaml validation: every bad file gets one line per problem naming key and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.config import ConfigError, load_config, load_secret, parse_config
from tests.support.config import BASE_CONFIG
from tests.support.paths import REPO


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [str(p) for p in info.value.problems]


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config.yaml")
    assert config.web.host == "127.0.0.1"  # loopback by default
    assert [s.name for s in config.meal.slots] == ["lunch"]
    assert config.readers[0].kind == "simulated"
    assert config.camera.enabled is False


LUNCH_BACKWARDS = BASE_CONFIG.replace('{name: lunch, start: "11:00", end: "13:30"}', "")
BAD_CONFIGS = [
    pytest.param(
        BASE_CONFIG.replace('    - {name: lunch, start: "11:00", end: "13:30"}\n',
                            "    - name: lunch\n      start: \"13:00\"\n      end: \"12:00\"\n"),
        ["config.yaml:11 meal.slots[1].end: must be after start (13:00)"],
        id="end-before-start",
    ),
    pytest.param(
        BASE_CONFIG.replace('start: "11:00"', 'start: "08:00"'),
        ["config.yaml:7 meal.slots: slots breakfast and lunch overlap"],
        id="overlapping-slots",
    ),
    pytest.param(
        BASE_CONFIG.replace("name: lunch", "name: breakfast"),
        ["config.yaml:7 meal.slots: slot names must be unique; repeated: breakfast"],
        id="repeated-slot",
    ),
    pytest.param(
        BASE_CONFIG.replace('start: "11:00"', 'start: "25:00"'),
        ["config.yaml:9 meal.slots[1].start: expected a time of day as HH:MM, got '25:00'"],
        id="impossible-time",
    ),
    pytest.param(
        BASE_CONFIG.replace("name: lunch", "name: supper"),
        ["config.yaml:9 meal.slots[1].name: Input should be 'breakfast', 'lunch', 'dinner' or 'day'"],
        id="unknown-slot-name",
    ),
    pytest.param(
        BASE_CONFIG.replace("  name: 测试助老小院\n", "  name: 测试助老小院\n  timezone: Asia/Beijing\n"),
        ["config.yaml:4 site.timezone: unknown time zone 'Asia/Beijing' (e.g. Asia/Shanghai)"],
        id="bad-timezone",
    ),
    pytest.param(
        BASE_CONFIG.replace("device_id: test-terminal", "device_id: 村口 1"),
        ["config.yaml:5 device.device_id: only letters, digits, '.', '_' and '-' are allowed, got '村口 1'"],
        id="bad-device-id",
    ),
    pytest.param(
        BASE_CONFIG + "web:\n  prot: 8080\n",
        ["config.yaml:17 web.prot: unknown key (misspelt, or not valid here)"],
        id="misspelt-key",
    ),
    pytest.param(
        BASE_CONFIG + "web:\n  port: 80800\n",
        ["config.yaml:17 web.port: Input should be less than or equal to 65535"],
        id="port-out-of-range",
    ),
    pytest.param(
        BASE_CONFIG.replace("device:\n  device_id: test-terminal\n", ""),
        ["config.yaml:1 device: required key is missing"],
        id="missing-section",
    ),
    pytest.param(
        BASE_CONFIG + "  - {kind: serial, name: door}\n",
        ["config.yaml:16 readers[1]: a serial reader needs `device` (e.g. /dev/ttyUSB0)"],
        id="serial-without-device",
    ),
    pytest.param(
        BASE_CONFIG + "  - {kind: nfc-magic, name: door}\n",
        ["config.yaml:16 readers[1].kind: Input should be 'simulated', 'pcsc', 'wedge' or 'serial'"],
        id="unknown-reader-kind",
    ),
    pytest.param(
        BASE_CONFIG + "  - {kind: simulated, name: desk}\n",
        ["config.yaml:14 readers: reader names must be unique; repeated: desk"],
        id="duplicate-reader-name",
    ),
    pytest.param(
        BASE_CONFIG + "platform:\n  url: county.example/api\n",
        ["config.yaml:17 platform.url: must be an http(s) URL, got 'county.example/api'"],
        id="platform-url-without-scheme",
    ),
    pytest.param(
        BASE_CONFIG + "roster:\n  card_format: octal\n",
        ["config.yaml:17 roster.card_format: Input should be 'hex', 'hex_reversed', 'dec10', 'dec10_reversed' or 'wiegand26'"],
        id="unknown-card-format",
    ),
    pytest.param(
        "site: [unclosed\n",
        ["config.yaml:2: not valid YAML: expected ',' or ']', but got '<stream end>'"],
        id="yaml-syntax",
    ),
    pytest.param("", ["config.yaml:1: expected a mapping of keys, got empty"], id="empty-file"),
    pytest.param(
        BASE_CONFIG.replace("device_id: test-terminal", "device_id: test-terminal\n  token: s3cret"),
        ["config.yaml:6 device.token: unknown key (misspelt, or not valid here)"],
        id="secret-in-yaml-refused",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_names_key_and_line(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = BASE_CONFIG.replace("device_id: test-terminal", "device_id: ''") + "web:\n  port: 0\n"
    assert problems(text) == [
        "config.yaml:5 device.device_id: String should have at least 1 character",
        "config.yaml:17 web.port: Input should be greater than or equal to 1",
    ]


def test_unquoted_yaml_times_are_read_as_times() -> None:
    # YAML 1.1 turns an unquoted 11:00 into the integer 660; technicians will write it so.
    config = parse_config(BASE_CONFIG.replace('"11:00"', "11:00"))
    assert config.meal.slots[1].start.strftime("%H:%M") == "11:00"


def test_secret_from_environment_then_credentials_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIOSK_DEVICE_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert load_secret("device-token") is None
    (tmp_path / "device-token").write_text("from-systemd\n")
    (tmp_path / "device-token").chmod(0o400)  # as systemd hands it over; 0644 is refused
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_secret("device-token") == "from-systemd"
    monkeypatch.setenv("KIOSK_DEVICE_TOKEN", "from-env")
    assert load_secret("device-token") == "from-env"


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_validate_config_command_exit_codes(tmp_path: Path) -> None:
    ok = run_cli("validate-config", str(REPO / "config.yaml"))
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE_CONFIG + "web:\n  prot: 8080\n", encoding="utf-8")
    result = run_cli("validate-config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{bad}:17 web.prot: unknown key (misspelt, or not valid here)"

    missing = run_cli("--config", str(tmp_path / "nope.yaml"), "validate-config")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def test_reader_options_are_checked_against_the_reader_kind() -> None:
    text = (
        BASE_CONFIG + "  - {kind: serial, name: door, device: /dev/ttyS0, options: {baud: 9600}}\n"
    )
    assert problems(text) == [
        "config.yaml:16 readers[1]: unknown option(s) baud for a serial reader; allowed: "
        "baudrate, checksum, frame, read_timeout_s, repeat_holdoff_s, retry_initial_s, retry_max_s"
    ]
    good = parse_config(
        BASE_CONFIG
        + "  - {kind: serial, name: door, device: /dev/ttyS0, options: {baudrate: 115200}}\n"
    )
    assert good.readers[1].reader_params() == {
        "name": "door",
        "baudrate": 115200,
        "port": "/dev/ttyS0",
    }


def test_every_reader_kind_builds_from_config_without_touching_devices() -> None:
    from kiosk.runtime.daemon import build_reader

    config = parse_config(
        BASE_CONFIG
        + "  - {kind: pcsc, name: nfc}\n"
        + "  - {kind: wedge, name: usb, device: /dev/input/nonexistent, delivers: dec10}\n"
        + "  - {kind: serial, name: rs485, device: /dev/nonexistent, options: {frame: stx_etx_hex}}\n"
    )
    readers = {cfg.name: build_reader(cfg) for cfg in config.readers}
    assert sorted(readers) == ["desk", "nfc", "rs485", "usb"]
    assert all(r.name == name for name, r in readers.items())


def test_per_module_log_levels() -> None:
    import logging

    from kiosk.runtime.logs import setup_logging

    config = parse_config(BASE_CONFIG + "logging: {level: WARNING, levels: {sync: DEBUG}}\n")
    setup_logging(config.logging)
    try:
        assert logging.getLogger().level == logging.WARNING
        assert logging.getLogger("sync").level == logging.DEBUG
        assert logging.getLogger("sync.uploader").getEffectiveLevel() == logging.DEBUG
    finally:
        logging.getLogger("sync").setLevel(logging.NOTSET)
    assert problems(BASE_CONFIG + "logging: {levels: {sync: LOUD}}\n") == [
        "config.yaml:16 logging.levels.sync: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"
    ]
