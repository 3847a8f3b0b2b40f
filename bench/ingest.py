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
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import add_records, kiosk_side, platform, template_store
from bench.harness import Context, Row, p50, p99

ELDERS = 50
log = logging.getLogger(__name__)
_ERRORS: list[str] = []
BASELINE_LABEL = "the same kiosks, one record per request"


def _bodies(side: Any, sizes: list[int]) -> list[bytes]:
    """Signed, gzip-compressed RecordBatch bodies of the given sizes, in seq order."""
    from sync.wire import RecordBatch

    up = side.uploader("http://unused", batch_size=sum(sizes))
    records = up._next_batch(after_seq=0)  # signs them, as a real round would
    bodies, pos = [], 0
    for size in sizes:
        chunk = records[pos : pos + size]
        pos += size
        batch = RecordBatch(
            device_id=side.device_id, sent_at=dt.datetime.now(dt.UTC), records=chunk
        )
        bodies.append(gzip.compress(batch.model_dump_json().encode(), compresslevel=6))
    return bodies


def _fire(url: str, jobs: list[tuple[str, list[bytes]]]) -> tuple[float, list[float], int, int]:
    """Every kiosk posts its bodies in order, all kiosks at once; a 503 is retried after its
    Retry-After (at most 5 s), as the uploader does. (seconds, latencies ms, errors, 503s)"""
    import httpx

    latencies: list[float] = []
    errors = [0]
    busy = [0]
    first_error: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(jobs) + 1)

    def kiosk(token: str, bodies: list[bytes]) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        }
        with httpx.Client(base_url=url, headers=headers, timeout=900) as http:
            start.wait()
            for body in bodies:
                while True:
                    t0 = time.perf_counter()
                    r = http.post("/v1/records", content=body)
                    ms = (time.perf_counter() - t0) * 1000
                    with lock:
                        latencies.append(ms)
                        if r.status_code == 503:  # busy: the uploader retries after this
                            busy[0] += 1
                        elif r.status_code != 200:
                            errors[0] += 1
                            first_error.append(f"HTTP {r.status_code}: {r.text[:300]}")
                    if r.status_code < 500:
                        break  # 200, or a 4xx that a retry cannot change
                    time.sleep(min(5.0, float(r.headers.get("Retry-After", "1"))))

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(kiosk, token, bodies) for token, bodies in jobs]
        start.wait()
        t0 = time.perf_counter()
        for f in futures:
            f.result()
        seconds = time.perf_counter() - t0
    if first_error:
        log.warning("ingest errors, first: %s", first_error[0])
        _ERRORS.extend(first_error[:3])
    return seconds, latencies, errors[0], busy[0]


def run(ctx: Context) -> list[Row]:
    kiosks = ctx.size(5, 200)
    per_kiosk = ctx.size(100, 500)  # records each kiosk sends batched (one batch of 500)
    singles = ctx.size(3, 10)  # records each kiosk sends one per request first (baseline)
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
        t_base, lat_base, err_base, busy_base = _fire(plat.url, base_jobs)
        t_ours, lat_ours, err_ours, busy_ours = _fire(plat.url, our_jobs)
        stored = sum(plat.record_count(s.device_id) for s in sides[:5])
        platform_log = plat.log_tail()
    if stored != 5 * (singles + per_kiosk):
        raise RuntimeError(
            f"platform stored {stored} records of {5 * (singles + per_kiosk)}; errors "
            f"{_ERRORS}; platform log: {platform_log}"
        )
    if err_base or err_ours:
        locked = platform_log.count("database is locked")
        ctx.note(
            f"The platform answered HTTP 500 to {err_ours} batch requests (baseline "
            f"{err_base}); they were retried and succeeded. Its log shows 'database is locked' "
            f"({locked} times in the last 3,000 characters): a transaction outside the "
            "retried ingest (BEGIN IMMEDIATE waiting past busy_timeout) surfaces as a 500, not "
            "as the 503 + Retry-After the uploader expects. First answers: "
            f"{_ERRORS[:1]}"
        )
    base_rate = kiosks * singles / t_base
    our_rate = kiosks * per_kiosk / t_ours
    common: dict[str, Any] = {"bench": "ingest", "baseline_label": BASELINE_LABEL}
    ctx.note(
        f"{kiosks} kiosks posting at once (one thread each): baseline {kiosks * singles:,} "
        f"records one per request in {t_base:.1f} s, then ours {kiosks * per_kiosk:,} records "
        f"in batches of {per_kiosk} in {t_ours:.1f} s. Request latency is per request (a batch "
        f"of {per_kiosk} vs a single record). Spot check: the first 5 kiosks' records on the "
        f"platform: {stored:,} (expected {5 * (singles + per_kiosk):,}). Baseline single-record "
        f"requests under the same load: p50 {p50(lat_base):.1f} ms, p99 {p99(lat_base):.1f} ms. "
        f"503 busy answers (retried): ours {busy_ours}, baseline {busy_base}."
    )

    return [
        Row(metric=f"{kiosks} kiosks: records/s", ours=our_rate, baseline=base_rate,
            unit="rec/s", higher_is_better=True, n=kiosks * per_kiosk, **common),
        Row(metric=f"{kiosks} kiosks: 503 busy answers (retried)", ours=busy_ours,
            baseline=busy_base, unit="", **common),
        Row(metric=f"{kiosks} kiosks: HTTP 500 answers (retried)", ours=err_ours,
            baseline=err_base, unit="", **common),
        Row(metric=f"{kiosks} kiosks: 500-record request p50", ours=p50(lat_ours), unit="ms",
            n=len(lat_ours), **common),
        Row(metric=f"{kiosks} kiosks: 500-record request p99", ours=p99(lat_ours), unit="ms",
            n=len(lat_ours), **common),
    ]  # fmt: skip
