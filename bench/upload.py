"""Offline backlog -> reference platform on loopback (SQLite backend, its own process).

Ours: `Uploader.run_round()` with its default batch of 500 (gzip JSON, signing at upload,
outbox marks in one transaction per batch). Baseline: the same uploader with one record per
request (batch_size=1), on a smaller backlog of its own kiosk (records/s is comparable).
Bytes per record are the request bodies as sent (gzip), without HTTP headers.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import add_records, kiosk_side, platform, template_store
from bench.harness import Budget, Context, Row, dominant, profile_summary

ELDERS = 200
BASELINE_LABEL = "the same Uploader, one record per request (batch_size=1)"


def run(ctx: Context) -> list[Row]:
    n = ctx.size(500, 50_000)
    n_base = ctx.size(100, 2_000)
    template = template_store(ctx.workdir, ELDERS)
    with platform(ctx.workdir) as plat:
        ours = kiosk_side(template, ctx.workdir / "ours", plat)
        base = kiosk_side(template, ctx.workdir / "base", plat)
        for start in range(0, n, 10_000):
            add_records(ours.store, ours.device_id, min(10_000, n - start), ELDERS, start)
        add_records(base.store, base.device_id, n_base, ELDERS)
        # Baseline first for a few seconds, then ours, then the rest of the baseline: the
        # platform's database grows during the run, so neither side gets only the empty one.
        base_up = base.uploader(plat.url, batch_size=1)
        ours_up = ours.uploader(plat.url, batch_size=500)
        half = n_base // 2
        t0 = time.perf_counter()
        base_up.batch_size = 1
        first = _limited_round(base_up, half)
        t_base1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = ours_up.run_round()
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = base_up.run_round()
        t_base2 = time.perf_counter() - t0
        if not result.ok or result.pending_left:
            raise RuntimeError(f"upload did not drain: {result}")
        stored = plat.record_count(ours.device_id)
        base_records = first[0] + second.accepted + second.duplicate
        base_bytes = first[1] + second.bytes_sent
        base_rate = base_records / (t_base1 + t_base2)
        rows = [
            Row(bench="upload", metric=f"{n:,}-record backlog: time", ours=t_ours,
                baseline=n / base_rate, unit="s",
                budget=Budget("<=", 60.0 * n / 50_000, "s"), baseline_label=BASELINE_LABEL,
                note="baseline extrapolated from its records/s", n=n),
            Row(bench="upload", metric="records/s", ours=n / t_ours, baseline=base_rate,
                unit="rec/s", higher_is_better=True, baseline_label=BASELINE_LABEL, n=n),
            Row(bench="upload", metric="bytes/record (gzip body)",
                ours=result.bytes_sent / n, baseline=base_bytes / max(1, base_records),
                unit="B", baseline_label=BASELINE_LABEL, n=n),
        ]  # fmt: skip
        ctx.extra.update(
            ours={"records": n, "seconds": t_ours, "batches": result.batches,
                  "bytes": result.bytes_sent, "platform_count": stored},
            baseline={"records": base_records, "seconds": t_base1 + t_base2, "bytes": base_bytes},
        )  # fmt: skip
        ctx.note(
            f"Ours: {n:,} records in {result.batches} batches of 500, {t_ours:.1f} s; the "
            f"platform holds {stored:,}. Baseline: {base_records:,} records one per request "
            f"in {t_base1 + t_base2:.1f} s (two halves around ours). Budget scaled to the "
            f"backlog: 60 s per 50,000."
        )
        if t_ours > 60.0 * n / 50_000:
            _profile(ctx, template, plat)
    return rows


def _limited_round(uploader: Any, limit: int) -> tuple[int, int]:
    """Send `limit` records one per request; (records acknowledged, bytes)."""
    done = sent = 0
    while done < limit:
        records = uploader._next_batch(after_seq=0)
        if not records:
            break
        outcome = uploader._send(records)
        if isinstance(outcome, Exception):
            raise RuntimeError(f"baseline upload failed: {outcome}")
        result, size = outcome
        done += len(result.accepted) + len(result.duplicate)
        sent += size
    return done, sent


def _profile(ctx: Context, template: Any, plat: Any) -> None:
    side = kiosk_side(template, ctx.workdir / "profiled", plat)
    n = 10_000  # large enough for costs that grow with the backlog to show
    add_records(side.store, side.device_id, n, ELDERS)
    up = side.uploader(plat.url, batch_size=500)
    text, own, total = profile_summary(up.run_round, top=15)
    ctx.profiles[f"kiosk side of a {n:,}-record upload, by own time"] = text
    ctx.note(
        f"Budget missed. Kiosk side of {n:,} records ({total:.2f} s, platform in its own "
        f"process, so waiting on it shows as socket reads): {dominant(own, total)}. "
        "`loading.py:_instance` is SQLAlchemy building MealRecord objects: ncalls above "
        f"{n:,} means rows are loaded more than once per round."
    )
