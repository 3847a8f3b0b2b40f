"""The benchmark runner: runs the benchmarks, checks the budgets, writes JSON + Markdown.

Every benchmark measures our code and its naive baseline in the same run, interleaved where
the two can alternate, so machine noise (the 2 cores are shared) hits both alike. A benchmark
returns `Row`s: one figure each, with its baseline, the ratio and the budget from DESIGN.md.
`ratio` is always "times better than the baseline" (baseline/ours for times and CPU,
ours/baseline for throughputs), so > 1 means we win.

Nothing here is a test: the test suite only runs `--quick` once to prove the harness works.
"""

from __future__ import annotations

import contextlib
import cProfile
import datetime as dt
import io
import json
import logging
import math
import os
import platform
import pstats
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
# The labelled photo set (never copied into the repository), as bench.face_tools.dataset finds it.
FACE_DATA = Path(os.environ.get("KIOSK_FACE_DATA") or REPO.parent / "shared" / "faces")


# ----------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); nan for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    rank = max(1, math.ceil(q * len(data)))
    return float(data[min(len(data), rank) - 1])


def p50(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def p99(values: Sequence[float]) -> float:
    return percentile(values, 0.99)


# ----------------------------------------------------------------------------- results


@dataclass
class Budget:
    """A limit from DESIGN.md: `op` is "<=" (at most) or ">=" (at least)."""

    op: str
    value: float
    unit: str

    def met(self, figure: float) -> bool:
        if math.isnan(figure):
            return False
        return figure <= self.value if self.op == "<=" else figure >= self.value

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {_fmt(self.value)} {self.unit}".strip()


@dataclass
class Row:
    bench: str
    metric: str
    ours: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    higher_is_better: bool = False
    budget: Budget | None = None
    note: str = ""
    n: int | None = None  # samples behind the figure

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or math.isnan(self.baseline) or math.isnan(self.ours):
            return None
        num, den = (
            (self.ours, self.baseline)
            if self.higher_is_better
            else (
                self.baseline,
                self.ours,
            )
        )
        if den == 0:
            return math.inf if num > 0 else None
        return num / den

    @property
    def verdict(self) -> str:
        if self.budget is None:
            return "-"
        return "pass" if self.budget.met(self.ours) else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["budget"] = str(self.budget) if self.budget else None
        data["budget_limit"] = asdict(self.budget) if self.budget else None
        data["ratio"] = _json_float(self.ratio)
        data["verdict"] = self.verdict
        data["ours"] = _json_float(self.ours)
        data["baseline"] = _json_float(self.baseline)
        return data


def _json_float(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return round(value, 4)


@dataclass
class Context:
    """What a benchmark gets: the mode, a scratch folder, and where to put notes/profiles."""

    quick: bool
    workdir: Path
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def size(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info("note: %s", text)


class Skip(Exception):  # noqa: N818 - a benchmark says why it cannot run here
    """Raised by a benchmark that cannot run on this machine (say why)."""


@dataclass
class BenchOutcome:
    name: str
    title: str
    rows: list[Row]
    notes: list[str]
    profiles: dict[str, str]
    seconds: float
    skipped: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- profiling


def profile_call(fn: Callable[[], Any], top: int = 18, sort: str = "cumulative") -> str:
    """cProfile one call; the top functions as text (for latest.md)."""
    return profile_summary(fn, top, sort)[0]


def profile_summary(
    fn: Callable[[], Any], top: int = 18, sort: str = "tottime"
) -> tuple[str, list[tuple[str, float]], float]:
    """(pstats text, [(function, own seconds)] largest first, total seconds) of one call."""
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    total = time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")  # drop pstats' preamble up to the column header
    text = text[start:].rstrip() if start >= 0 else text.rstrip()
    # Stats.stats (the raw table: (file, line, func) -> (cc, nc, tottime, cumtime, callers)) is
    # undocumented and missing from typeshed, but it is the only way to the own-time figures.
    table = stats.stats  # type: ignore[attr-defined]
    own = sorted(
        ((f"{Path(k[0]).name}:{k[1]}({k[2]})", v[2]) for k, v in table.items()),
        key=lambda kv: kv[1],
        reverse=True,
    )
    return text, own[:top], total


def dominant(own: list[tuple[str, float]], total: float, n: int = 3) -> str:
    """'f 0.58 s (84 %), g ...' for a note."""
    return ", ".join(f"{name} {sec:.3f} s ({100 * sec / total:.0f} %)" for name, sec in own[:n])


# ----------------------------------------------------------------------------- machine


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "sse4", "fma")))
    return []


def _openblas_core() -> str | None:
    """The OpenBLAS kernel numpy's bundled library chose (what OPENBLAS_CORETYPE changes)."""
    import ctypes

    import numpy

    libs = Path(numpy.__file__).parent.parent / "numpy.libs"
    for lib in sorted(libs.glob("*openblas*")):
        with contextlib.suppress(OSError):
            handle = ctypes.CDLL(str(lib))
            for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_"):
                fn = getattr(handle, name, None)
                if fn is not None:
                    fn.restype = ctypes.c_char_p
                    return fn().decode()
    return None


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def machine_record(load_at_start: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "loadavg_1min": {"start": load_at_start, "end": os.getloadavg()[0]},
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "sqlite": _sqlite_version(),
        "env": {
            k: os.environ.get(k)
            for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")
        },
    }
    try:
        import dlib

        record["dlib"] = {
            "version": dlib.__version__,
            "wheel": "dlib-bin" if _version("dlib-bin") else ("dlib" if _version("dlib") else "?"),
            "DLIB_USE_BLAS": bool(dlib.DLIB_USE_BLAS),
            "DLIB_USE_LAPACK": bool(getattr(dlib, "DLIB_USE_LAPACK", False)),
            "DLIB_USE_CUDA": bool(getattr(dlib, "DLIB_USE_CUDA", False)),
            # dlib's Python module names it USE_AVX_INSTRUCTIONS (no DLIB_USE_AVX attribute).
            "DLIB_USE_AVX": bool(
                getattr(dlib, "DLIB_USE_AVX", getattr(dlib, "USE_AVX_INSTRUCTIONS", False))
            ),
        }
    except ImportError as exc:
        record["dlib"] = {"error": str(exc)}
    with contextlib.suppress(Exception):
        record["numpy_openblas_core"] = _openblas_core()
    record["packages"] = {
        name: _version(name)
        for name in (
            "numpy",
            "opencv-python-headless",
            "face-recognition",
            "face-recognition-models",
            "dlib-bin",
            "dlib",
            "sqlalchemy",
            "fastapi",
            "uvicorn",
            "httpx",
            "pydantic",
            "cryptography",
            "pyscard",
            "haolinju-kiosk",
        )
    }
    with contextlib.suppress(Exception):
        import subprocess

        record["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    return record


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    module: str  # bench.<module> with run(ctx) -> list[Row]


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("card", "card tap -> durable record -> event", "bench.card"),
    Benchmark("face", "face frame -> decision, 640x480", "bench.face"),
    Benchmark("match", "1:N match", "bench.match"),
    Benchmark("idle", "CPU with the camera on", "bench.idle"),
    Benchmark("upload", "offline backlog -> platform", "bench.upload"),
    Benchmark("ingest", "platform ingest, many kiosks", "bench.ingest"),
    Benchmark("settle", "monthly settlement at province scale", "bench.settle_scale"),
    Benchmark("coldstart", "cold start and resident memory", "bench.coldstart"),
)
NAMES = tuple(b.name for b in BENCHMARKS)


def select(only: Sequence[str] | None) -> list[Benchmark]:
    if not only:
        return list(BENCHMARKS)
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return [b for b in BENCHMARKS if b.name in only]


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The kiosk logs every check-in at INFO; thousands of lines would drown the table."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(previous)


def run_one(bench: Benchmark, quick: bool, progress: Callable[[str], None]) -> BenchOutcome:
    import importlib

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench.name}-") as tmp:
        ctx = Context(quick=quick, workdir=Path(tmp))
        try:
            module = importlib.import_module(bench.module)
            with _quiet_logs():
                rows = module.run(ctx)
        except Skip as exc:
            progress(f"{bench.name}: skipped ({exc})")
            return BenchOutcome(
                bench.name, bench.title, [], ctx.notes, ctx.profiles,
                time.perf_counter() - started, skipped=str(exc), extra=ctx.extra,
            )  # fmt: skip
        except Exception as exc:
            progress(f"{bench.name}: FAILED: {exc}")
            return BenchOutcome(
                bench.name, bench.title, [], ctx.notes, ctx.profiles,
                time.perf_counter() - started,
                error="".join(traceback.format_exception(exc))[-4000:], extra=ctx.extra,
            )  # fmt: skip
    seconds = time.perf_counter() - started
    progress(f"{bench.name}: {len(rows)} figures in {seconds:.1f} s")
    return BenchOutcome(
        bench.name, bench.title, rows, ctx.notes, ctx.profiles, seconds, extra=ctx.extra
    )


@dataclass
class Report:
    quick: bool
    started_at: str
    seconds: float
    machine: dict[str, Any]
    outcomes: list[BenchOutcome]

    @property
    def rows(self) -> list[Row]:
        return [r for o in self.outcomes for r in o.rows]

    @property
    def failed_budgets(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "FAIL"]

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "quick": self.quick,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 1),
            "machine": self.machine,
            "rows": [r.as_dict() for r in self.rows],
            "benchmarks": {
                o.name: {
                    "title": o.title,
                    "seconds": round(o.seconds, 1),
                    "skipped": o.skipped,
                    "error": o.error,
                    "notes": o.notes,
                    "profiles": o.profiles,
                    "extra": o.extra,
                }
                for o in self.outcomes
            },
        }


def run(
    quick: bool = False,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] = lambda s: None,
) -> Report:
    chosen = select(only)
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # Other work on the machine slows every figure: the load around the run goes on record so
    # a reader can tell a regression from a busy machine.
    load_at_start = os.getloadavg()[0]
    outcomes = []
    for bench in chosen:
        progress(f"{bench.name}: {bench.title} ({'quick' if quick else 'full'}) ...")
        outcomes.append(run_one(bench, quick, progress))
    machine = machine_record(load_at_start)
    return Report(quick, started_at, time.perf_counter() - started, machine, outcomes)


# ----------------------------------------------------------------------------- output


def _fmt(value: float | None) -> str:  # noqa: PLR0911
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def table_rows(report: Report) -> list[list[str]]:
    out = []
    for r in report.rows:
        ratio = r.ratio
        out.append(
            [
                r.bench,
                r.metric,
                f"{_fmt(r.ours)} {r.unit}".strip(),
                (f"{_fmt(r.baseline)} {r.unit}".strip() if r.baseline is not None else "-"),
                f"{ratio:.1f}x" if ratio is not None and math.isfinite(ratio) else "-",
                str(r.budget) if r.budget else "-",
                r.verdict,
            ]
        )
    return out


HEADERS = ["bench", "metric", "ours", "baseline", "ratio", "budget", "pass/fail"]


def machine_line(m: dict[str, Any]) -> str:
    d = m.get("dlib", {})
    pk = m.get("packages", {})
    return (
        f"{m.get('cpu_model')}, {m.get('cores')} cores; Python {m.get('python')}; "
        f"dlib {d.get('version')} ({d.get('wheel')}, AVX {d.get('DLIB_USE_AVX')}, "
        f"BLAS {d.get('DLIB_USE_BLAS')}); numpy {pk.get('numpy')} (OpenBLAS core "
        f"{m.get('numpy_openblas_core')}); OpenCV {pk.get('opencv-python-headless')}; "
        f"SQLite {m.get('sqlite')}; commit {m.get('git_commit')}"
    )


def load_line(m: dict[str, Any]) -> list[str]:
    load = m.get("loadavg_1min")
    if not load:
        return []  # results written before the load was recorded
    cores = m.get("cores") or 1
    busy = max(load["start"], load["end"]) > cores
    verdict = "above the core count: other work slowed these figures" if busy else "quiet"
    return [
        f"Load average (1 min) at start {load['start']:.2f}, at end {load['end']:.2f}, "
        f"on {m.get('cores')} cores: {verdict}."
    ]


def markdown(report: Report) -> str:  # noqa: PLR0912
    lines = [
        f"# Benchmark results ({'quick' if report.quick else 'full'} run)",
        "",
        f"Run {report.started_at} in {report.seconds:.0f} s with `python -m bench"
        f"{' --quick' if report.quick else ''}`.",
        "",
        f"Machine: {machine_line(report.machine)}.",
        f"Environment: {json.dumps(report.machine.get('env', {}), ensure_ascii=False)}.",
        *load_line(report.machine),
        "",
        "`ratio` = times better than the naive baseline measured in the same run "
        "(baseline/ours for times and CPU, ours/baseline for throughput).",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    for cells in table_rows(report):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    baselines = [(r.bench, r.metric, r.baseline_label) for r in report.rows if r.baseline_label]
    if baselines:
        lines += ["", "## Baselines", ""]
        seen = set()
        for bench, _metric, label in baselines:
            if (bench, label) not in seen:
                seen.add((bench, label))
                lines.append(f"- **{bench}**: {label}")
    failed = report.failed_budgets
    lines += ["", "## Budgets missed", ""]
    if failed:
        for r in failed:
            lines.append(f"- {r.bench} / {r.metric}: {_fmt(r.ours)} {r.unit}, budget {r.budget}")
    else:
        lines.append("None.")
    for o in report.outcomes:
        if not (o.notes or o.profiles or o.skipped or o.error):
            continue
        lines += ["", f"## {o.name}: {o.title}", ""]
        if o.skipped:
            lines.append(f"Skipped: {o.skipped}")
            lines.append("")
        if o.error:
            lines += ["Failed:", "", "```", o.error.rstrip(), "```", ""]
        for n in o.notes:
            lines.append(f"- {n}")
        for label, text in o.profiles.items():
            lines += ["", f"cProfile, {label}:", "", "```", text, "```"]
    lines += ["", "## Machine", "", "```json", json.dumps(report.machine, indent=2), "```", ""]
    return "\n".join(lines)


def write(report: Report, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(
        json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    md_path.write_text(markdown(report), encoding="utf-8")
    return json_path, md_path


def merge_into(report: Report, previous_json: Path) -> Report:
    """For `--only`: keep the other benchmarks' rows of the previous run (same mode)."""
    if not previous_json.exists():
        return report
    try:
        old = json.loads(previous_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return report
    if old.get("quick") != report.quick:
        return report
    ran = {o.name for o in report.outcomes}
    kept: list[BenchOutcome] = []
    for name, info in old.get("benchmarks", {}).items():
        if name in ran:
            continue
        rows = [_row_from_dict(d) for d in old.get("rows", []) if d.get("bench") == name]
        kept.append(
            BenchOutcome(
                name, info.get("title", name), rows, info.get("notes", []),
                info.get("profiles", {}), info.get("seconds", 0.0), info.get("skipped"),
                info.get("error"), info.get("extra", {}),
            )
        )  # fmt: skip
    order = {n: i for i, n in enumerate(NAMES)}
    outcomes = sorted([*kept, *report.outcomes], key=lambda o: order.get(o.name, 99))
    return Report(report.quick, report.started_at, report.seconds, report.machine, outcomes)


def _num(value: Any) -> float:
    return float(value) if value is not None else math.nan


def _row_from_dict(d: dict[str, Any]) -> Row:
    limit = d.get("budget_limit")
    return Row(
        bench=d["bench"],
        metric=d["metric"],
        ours=_num(d.get("ours")),
        unit=d.get("unit", ""),
        baseline=None if d.get("baseline") is None else _num(d["baseline"]),
        baseline_label=d.get("baseline_label", ""),
        higher_is_better=bool(d.get("higher_is_better")),
        budget=Budget(**limit) if limit else None,
        note=d.get("note", ""),
        n=d.get("n"),
    )


def print_table(report: Report, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(Console().width, 150))
    table = Table(title=f"python -m bench ({'quick' if report.quick else 'full'})")
    for h in HEADERS:
        table.add_column(h, justify="right" if h in ("ours", "baseline", "ratio") else "left")
    colour = {"pass": "green", "FAIL": "red", "-": "dim"}
    for cells in table_rows(report):
        cells[-1] = f"[{colour[cells[-1]]}]{cells[-1]}[/]"
        table.add_row(*cells)
    console.print(table)
    console.print(f"[dim]{machine_line(report.machine)}[/]")
    for o in report.outcomes:
        if o.skipped:
            console.print(f"[yellow]{o.name} skipped:[/] {o.skipped}")
        if o.error:
            console.print(f"[red]{o.name} failed:[/] {o.error.strip().splitlines()[-1]}")
