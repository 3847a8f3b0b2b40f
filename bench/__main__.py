"""`python -m bench [--quick] [--only NAME]` (`make bench`): the benchmark harness.

See docs/bench.md.

A full run writes bench/results/latest.json and latest.md (commit them when a figure moves);
`--quick` (small sizes, seconds) writes quick.json/quick.md so it never overwrites the full
figures. `--only` re-runs some benchmarks and keeps the other rows of the previous run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="small sizes and short windows (seconds)")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="run only this benchmark (repeatable)", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="results folder (default bench/results)")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 when a budget is missed")
    ] = False,
    face_detector: Annotated[
        str | None,
        typer.Option(
            "--face-detector",
            help="face: also time these detectors beside HOG (hog,yunet; BENCH_FACE_DETECTORS)",
        ),
    ] = None,
) -> None:
    """Measure the budgets of DESIGN.md against naive baselines; write JSON + Markdown."""
    try:
        from bench import harness
    except ImportError as exc:  # an installed wheel has no bench/: it lives in the repository
        err.print(f"the benchmark harness is not available here ({exc}); run from the repo")
        raise typer.Exit(2) from None
    if face_detector:
        os.environ["BENCH_FACE_DETECTORS"] = face_detector
    names = [n.strip() for item in only or [] for n in item.split(",") if n.strip()]
    try:
        harness.select(names)
    except ValueError as exc:
        err.print(str(exc), style="bold red")
        raise typer.Exit(2) from None
    report = harness.run(quick=quick, only=names, progress=lambda s: err.print(f"[dim]{s}[/]"))
    folder = out_dir or harness.RESULTS_DIR
    stem = "quick" if quick else "latest"
    if names:
        report = harness.merge_into(report, folder / f"{stem}.json")
    json_path, md_path = harness.write(report, folder, stem)
    harness.print_table(report, out)
    out.print(f"wrote {json_path} and {md_path}")
    broken = [o.name for o in report.outcomes if o.error]
    if broken:
        err.print(f"benchmark(s) failed to run: {', '.join(broken)}", style="bold red")
        raise typer.Exit(1)
    if strict and report.failed_budgets:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(bench)
