"""The reference platform (one uvicorn process, SQLite) ingesting from many kiosks at once.

Each simulated kiosk is a real kiosk database (copied from one migrated template) with its own
registered device key and its own signed records. The request bodies are built beforehand
(signed, gzip, exactly as PlatformClient sends them), so the load generator in this process
does little more than HTTP and the figure is the platform's. All kiosks post at the same time
from one thread each.

Ours: batches of 500 (the uploader's default). Baseline: the same kiosks sending their first
records one per request (what a naive uploader would do), in a phase before ours.
"""

from __future__ import annotations

import datetime as dt
import gzip
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import add_records, kiosk_side, platform, template_store
from bench.harness import Context, Row, p50, p99

ELDERS = 50
BASELINE_LABEL = "the same kiosks, one record per request"


def _bodies(side: Any, sizes: list[int]) -> list[bytes]:
    """Signed, gzip-compressed RecordBatch bodies of the given sizes, in seq order."""
    from sync.wire import RecordBatch

    up = side.uploader("http://unused", batch_size=sum(sizes))
    records = up._next_batch(exclude=set())  # signs them, as a real round would
    bodies, pos = [], 0
    for size in sizes:
        chunk = records[pos : pos + size]
        pos += size
        batch = RecordBatch(
            device_id=side.device_id, sent_at=dt.datetime.now(dt.UTC), records=chunk
        )
        bodies.append(gzip.compress(batch.model_dump_json().encode(), compresslevel=6))
    return bodies


def _fire(url: str, jobs: list[tuple[str, list[bytes]]]) -> tuple[float, list[float], int]:
    """Every kiosk posts its bodies in order, all kiosks at once. (seconds, latencies ms, errors)"""
    import httpx

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(len(jobs) + 1)

    def kiosk(token: str, bodies: list[bytes]) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        }
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            start.wait()
            for body in bodies:
                t0 = time.perf_counter()
                r = http.post("/v1/records", content=body)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    if r.status_code != 200:
                        errors[0] += 1

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(kiosk, token, bodies) for token, bodies in jobs]
        start.wait()
        t0 = time.perf_counter()
        for f in futures:
            f.result()
        seconds = time.perf_counter() - t0
    return seconds, latencies, errors[0]


def run(ctx: Context) -> list[Row]:
    kiosks = ctx.size(20, 200)
    per_kiosk = ctx.size(500, 500)  # records each kiosk sends batched (one batch of 500)
    singles = ctx.size(5, 10)  # records each kiosk sends one per request first (baseline)
    template = template_store(ctx.workdir, ELDERS)
    with platform(ctx.workdir) as plat:
        sides = []
        base_jobs, our_jobs = [], []
        for k in range(kiosks):
            side = kiosk_side(template, ctx.workdir / f"k{k}", plat)
            add_records(side.store, side.device_id, singles + per_kiosk, ELDERS)
            bodies = _bodies(side, [1] * singles + [per_kiosk])
            side.store.close()
            base_jobs.append((side.token, bodies[:singles]))
            our_jobs.append((side.token, bodies[singles:]))
            sides.append(side)
        t_base, lat_base, err_base = _fire(plat.url, base_jobs)
        t_ours, lat_ours, err_ours = _fire(plat.url, our_jobs)
        stored = sum(plat.record_count(s.device_id) for s in sides[:5])
    if err_base or err_ours:
        raise RuntimeError(f"platform answered errors: baseline {err_base}, ours {err_ours}")
    base_rate = kiosks * singles / t_base
    our_rate = kiosks * per_kiosk / t_ours
    common: dict[str, Any] = {"bench": "ingest", "baseline_label": BASELINE_LABEL}
    ctx.note(
        f"{kiosks} kiosks posting at once (one thread each): baseline {kiosks * singles:,} "
        f"records one per request in {t_base:.1f} s, then ours {kiosks * per_kiosk:,} records "
        f"in batches of {per_kiosk} in {t_ours:.1f} s. Request latency is per request (a batch "
        f"of {per_kiosk} vs a single record). Spot check: the first 5 kiosks' records on the "
        f"platform: {stored:,} (expected {5 * (singles + per_kiosk):,}). Baseline single-record "
        f"requests under the same load: p50 {p50(lat_base):.1f} ms, p99 {p99(lat_base):.1f} ms."
    )
    if stored != 5 * (singles + per_kiosk):
        raise RuntimeError(f"platform stored {stored}, expected {5 * (singles + per_kiosk)}")
    return [
        Row(metric=f"{kiosks} kiosks: records/s", ours=our_rate, baseline=base_rate,
            unit="rec/s", higher_is_better=True, n=kiosks * per_kiosk, **common),
        Row(metric=f"{kiosks} kiosks: 500-record request p50", ours=p50(lat_ours), unit="ms",
            n=len(lat_ours), **common),
        Row(metric=f"{kiosks} kiosks: 500-record request p99", ours=p99(lat_ours), unit="ms",
            n=len(lat_ours), **common),
    ]  # fmt: skip
