"""The benchmark report says how busy the machine was: a figure taken at load 7 on 2 cores is
not a regression, and a reader of bench/results must be able to tell."""

from __future__ import annotations

import os

from bench.harness import Report, machine_record, markdown


def report(machine: dict[str, object]) -> Report:
    return Report(quick=True, started_at="2026-12-01T00:00:00+00:00", seconds=1.0,
                  machine=machine, outcomes=[])  # fmt: skip


def test_the_machine_record_holds_the_load_around_the_run_and_the_report_prints_it() -> None:
    machine = machine_record(load_at_start=7.25)
    load = machine["loadavg_1min"]
    assert load["start"] == 7.25
    assert 0 <= load["end"] <= os.getloadavg()[0] + 50  # read now, not copied from the start
    text = markdown(report(machine))
    assert "Load average (1 min) at start 7.25, at end" in text
    assert f"on {os.cpu_count()} cores" in text
    busy = max(7.25, load["end"]) > (os.cpu_count() or 1)
    assert ("other work slowed these figures" in text) == busy


def test_a_quiet_run_is_called_quiet() -> None:
    quiet = {"cores": 2, "loadavg_1min": {"start": 0.7, "end": 0.8}}
    assert "on 2 cores: quiet." in markdown(report(quiet))
    busy = {"cores": 2, "loadavg_1min": {"start": 0.7, "end": 5.4}}
    assert "other work slowed these figures" in markdown(report(busy))


def test_results_written_before_the_load_was_recorded_still_render() -> None:
    assert "Load average" not in markdown(report({"cores": 2}))
