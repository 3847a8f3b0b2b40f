"""1:N match at 1k / 10k / 50k templates: `FaceMatcher.nearest` + decision vs
face_recognition.face_distance (over a Python list of known encodings, as naive code keeps
them; the ndarray form is reported in the notes). Queries alternate between the three.

Encodings are random (the arithmetic does not depend on the values); 3 templates per elder.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.harness import Budget, Context, Row, p50, p99

BUDGET = Budget("<=", 5.0, "ms")
BASELINE_LABEL = "face_recognition.face_distance(list of known encodings, query) + argmin"


def _timed(fn: Any, q: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(q)
    return (time.perf_counter() - t0) * 1000


def run(ctx: Context) -> list[Row]:
    from face_recognition import face_distance

    from kiosk.face import FaceMatcher

    rows = []
    sizes = (1_000, 10_000, 50_000)
    queries_n = ctx.size(20, 300)
    rng = np.random.default_rng(0)
    for n in sizes:
        templates = rng.normal(0, 0.09, size=(n, 128)).astype(np.float32)
        queries = rng.normal(0, 0.09, size=(queries_n, 128)).astype(np.float32)
        matcher = FaceMatcher()
        matcher.set_templates([f"e{i // 3}" for i in range(n)], templates)
        as_list = [t.astype(np.float64) for t in templates]
        as_array = templates.astype(np.float64)

        def naive_list(q: np.ndarray, known: list[np.ndarray] = as_list) -> int:
            return int(np.argmin(face_distance(known, q)))

        def naive_array(q: np.ndarray, known: np.ndarray = as_array) -> int:
            return int(np.argmin(face_distance(known, q)))

        matcher.match(queries[0])  # warm-up: page the matrices in
        naive_list(queries[0])
        naive_array(queries[0])
        ours: list[float] = []
        base: list[float] = []
        base_array: list[float] = []
        # The list baseline costs ~100x ours: time it on every few queries only at 50k.
        every = 1 if n < 50_000 else ctx.size(2, 5)
        for i, q in enumerate(queries):
            ours.append(_timed(matcher.match, q))
            if i % every == 0:
                base.append(_timed(naive_list, q))
                base_array.append(_timed(naive_array, q))
        common: dict[str, Any] = {"bench": "match", "unit": "ms", "baseline_label": BASELINE_LABEL}
        rows.append(Row(metric=f"{n // 1000}k templates p50", ours=p50(ours), baseline=p50(base),
                        n=len(ours), **common))  # fmt: skip
        rows.append(Row(metric=f"{n // 1000}k templates p99", ours=p99(ours), baseline=p99(base),
                        budget=BUDGET if n == 50_000 else None, n=len(ours), **common))  # fmt: skip
        ctx.extra[f"{n}"] = {
            "ours_p50_ms": p50(ours),
            "face_distance_list_p50_ms": p50(base),
            "face_distance_ndarray_p50_ms": p50(base_array),
        }
        ctx.note(
            f"{n:,} templates: face_distance over a float64 ndarray (the better naive form) "
            f"p50 {p50(base_array):.2f} ms vs ours {p50(ours):.3f} ms."
        )
    rows.append(_single_thread_row(ctx, queries_n))
    return rows


def _single_thread_row(ctx: Context, queries_n: int) -> Row:
    """The same 50k match in a child with OPENBLAS_NUM_THREADS=1: on 2 shared cores OpenBLAS's
    second thread mostly waits for a core (gemv of 50k x 128 is too small to split)."""
    import json
    import subprocess
    import sys

    from bench.common import child_env
    from bench.harness import REPO

    env = child_env(OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "bench.match", "50000", str(queries_n)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    got = json.loads(done.stdout.strip().splitlines()[-1])
    ctx.note(
        "With OPENBLAS_NUM_THREADS=1 (child process): 50k p50 "
        f"{got['p50']:.3f} ms, p99 {got['p99']:.3f} ms; face_distance(list) p50 "
        f"{got['base_p50']:.1f} ms."
    )
    return Row(bench="match", metric="50k p99, OPENBLAS_NUM_THREADS=1", ours=got["p99"],
               baseline=got["base_p99"], unit="ms", budget=BUDGET, baseline_label=BASELINE_LABEL,
               n=queries_n)  # fmt: skip


def _child(n: int, queries_n: int) -> dict[str, float]:
    from face_recognition import face_distance

    from kiosk.face import FaceMatcher

    rng = np.random.default_rng(1)
    templates = rng.normal(0, 0.09, size=(n, 128)).astype(np.float32)
    queries = rng.normal(0, 0.09, size=(queries_n, 128)).astype(np.float32)
    matcher = FaceMatcher()
    matcher.set_templates([f"e{i // 3}" for i in range(n)], templates)
    known = [t.astype(np.float64) for t in templates]
    matcher.match(queries[0])
    ours, base = [], []
    for i, q in enumerate(queries):
        ours.append(_timed(matcher.match, q))
        if i % 5 == 0:
            base.append(_timed(lambda q_: face_distance(known, q_), q))
    return {"p50": p50(ours), "p99": p99(ours), "base_p50": p50(base), "base_p99": p99(base)}


if __name__ == "__main__":
    import json
    import sys
    import warnings

    warnings.simplefilter("ignore")
    print(json.dumps(_child(int(sys.argv[1]), int(sys.argv[2]))))  # noqa: T201
