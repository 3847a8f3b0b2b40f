"""The benchmark harness works: `python -m bench --quick` runs every benchmark once at small sizes
and writes well-formed JSON and Markdown. No figure is asserted: benchmarks are not tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.pcsc import PCSC_GROUP

# pcscd and the vpcd ports are global: one xdist worker runs every test that uses them.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(PCSC_GROUP), pytest.mark.pcsc]

ROW_KEYS = {"bench", "metric", "ours", "unit", "baseline", "ratio", "budget", "verdict", "n"}
BENCHMARKS = {"card", "face", "match", "idle", "upload", "ingest", "settle", "coldstart"}


@pytest.mark.timeout(900)
def test_quick_run_writes_json_and_markdown(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=880,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "python -m bench (quick)" in done.stdout  # the rich table was printed

    report = json.loads((tmp_path / "quick.json").read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert set(report["benchmarks"]) == BENCHMARKS
    for name, info in report["benchmarks"].items():
        assert info["error"] is None, f"{name}: {info['error']}"
    ran = {name for name, info in report["benchmarks"].items() if not info["skipped"]}
    assert {"card", "match", "upload", "ingest", "coldstart"} <= ran  # need no face data

    rows = report["rows"]
    assert {r["bench"] for r in rows} == ran
    for row in rows:
        assert set(row) >= ROW_KEYS, row
        assert row["verdict"] in {"pass", "FAIL", "-"}
        assert (row["budget"] is None) == (row["verdict"] == "-")
        if row["baseline"] is not None and row["ratio"] is not None:
            assert float(row["ratio"]) > 0
    budgeted = {r["bench"] for r in rows if r["budget"]}
    assert {"card", "match", "upload", "coldstart"} <= budgeted
    assert any(r["baseline"] is not None for r in rows if r["bench"] == "card")

    machine = report["machine"]
    for key in ("cpu_model", "cores", "python", "dlib", "packages", "sqlite"):
        assert machine[key], key
    assert {"DLIB_USE_AVX", "DLIB_USE_BLAS", "wheel"} <= set(machine["dlib"])
    assert machine["packages"]["numpy"]

    md = (tmp_path / "quick.md").read_text(encoding="utf-8")
    assert "| bench | metric | ours | baseline | ratio | budget | pass/fail |" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == len(rows) + 1
    assert machine["cpu_model"] in md and "dlib" in md
