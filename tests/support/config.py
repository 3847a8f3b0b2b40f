"""Kiosk configuration texts: one for in-process tests (fixed clock), one for real processes.

BASE_CONFIG goes with the `Clock` of tests/support/roster.py (2026-12-02, Asia/Shanghai).
`write_config` writes the file a `kiosk` subprocess reads: its site sits in a fixed-offset zone
where it is about noon now, so its lunch slot is open whenever the test runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

BASE_CONFIG = """\
site:
  point_id: ZY-TEST-001
  name: 测试助老小院
device:
  device_id: test-terminal
meal:
  slots:
    - {name: breakfast, start: "07:00", end: "08:30"}
    - {name: lunch, start: "11:00", end: "13:30"}
cleaning:
  enabled: true
  slots:
    - {name: day, start: "08:00", end: "18:00"}
readers:
  - {kind: simulated, name: desk}
"""

SIMULATED_READER = "readers: [{kind: simulated, name: desk}]\n"


def noon_zone() -> str:
    """A fixed-offset zone in which it is about noon now, so a lunch slot is always open."""
    offset = 12 - dt.datetime.now(dt.UTC).hour
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}")


def write_config(
    folder: Path,
    port: int | None = None,
    extra: str = "",
    readers: str = SIMULATED_READER,
    device_id: str = "proc-test",
) -> Path:
    """folder/config.yaml for a `kiosk` subprocess (web on `port` when given); its path."""
    web = f"web: {{port: {port}}}\n" if port is not None else ""
    path = folder / "config.yaml"
    path.write_text(
        f"""\
site: {{point_id: ZY-T, name: 进程测试小院, timezone: {noon_zone()}}}
device: {{device_id: {device_id}}}
meal:
  slots: [{{name: lunch, start: "10:00", end: "14:00"}}]
{web}{readers}{extra}""",
        encoding="utf-8",
    )
    return path


def write_base_config(folder: Path, text: str = BASE_CONFIG) -> Path:
    """folder/config.yaml with BASE_CONFIG (for CLI commands run in-process); its path."""
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path
