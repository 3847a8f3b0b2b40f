"""The monthly settlement at province scale on PostgreSQL (issue 14, point 3).

A province: 10,000 meal points, 1M meals a day, 30 days = 30M records. The month is generated
inside PostgreSQL with generate_series (no Python in the loop) into the platform's own tables
(created from sync.platform.tables, indexes included), with the shape of the real thing:

- one terminal per point, 70 elders on each point's published roster (1 % suspended);
- every day each point serves lunch to its 70 elders and dinner to 30 of them (100 meals);
- 1 % manual check-ins, 1 % card taps flagged no_face, and 0.5 % of lunches eaten a second time
  at the neighbouring point (a roaming duplicate): the exceptions the settlement lists;
- records with realistic column sizes (canonical JSON body ~420 bytes, hashes, signatures).

The claims ingest keeps (`meal_claim`, one narrow row per record: kind, claimed) are generated
the same way, as ingest would have written them (the roaming lunch holds the slot where the
home point's record of it was manual or flagged).

Then it times, in the same run on the same data, `sync.platform.settlement.compute` (what the
county console and the close-month action run: the claims) and `compute_from_records` (the
path before the claims: every record of the month ranked with a window function), checks that
both give the same lines and exceptions, EXPLAINs compute's slowest statement into the notes,
and times the schema upgrade's backfill of the claims from the records (the migration of an
existing database). By default at 1/500 (`--quick`) or 1/10 of a province, extrapolated
linearly and saying so; `BENCH_SETTLE_SCALE=1` generates the full 30M records (~25 GB, about
half an hour here; the records-path baseline then runs once, `BENCH_SETTLE_BACKFILL=1` adds the
backfill).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import time
from typing import Any

from bench.harness import Budget, Context, Row

log = logging.getLogger(__name__)
MONTH = "2026-11"
FIRST_DAY = dt.date(2026, 11, 1)
DAYS = 30
ELDERS_PER_POINT = 70
DINERS = 30  # of them also eat dinner
PROVINCE_POINTS = 10_000
BUDGET = Budget("<=", 60.0, "s")

# One day of one point is 100 records: k < 70 lunch of elder k, k >= 70 dinner of elder k-70.
RECORDS_SQL = """
INSERT INTO record (record_id, device_id, seq, service_date, elder_id, service, slot, flags,
                    prev_hash, hash, signature, body, received_at, signature_ok)
SELECT md5(p || '/' || __DAY__ || '/' || k)::uuid::text,
       'D' || lpad(p::text, 5, '0'),
       __DAY__ * 100 + k + 1,
       DATE '__FIRST__' + __DAY__,
       'E' || lpad(p::text, 5, '0') || '-' || lpad((k %% 70)::text, 2, '0'),
       'meal',
       CASE WHEN k < 70 THEN 'lunch' ELSE 'dinner' END,
       CASE WHEN (p * 31 + __DAY__ * 7 + k) %% 100 = 1 THEN 'no_face' ELSE '' END,
       md5(p || 'p' || __DAY__ || k) || md5(k || 'p' || __DAY__ || p),
       md5(p || 'h' || __DAY__ || k) || md5(k || 'h' || __DAY__ || p),
       rpad(md5(p || 's' || __DAY__ || k) || md5(k || 's' || __DAY__ || p), 88, '='),
       '{"caregiver_id":null,"card_uid":"A' || lpad(to_hex(p * 100 + k), 7, '0')
         || '","checked_in_at":"' || (DATE '__FIRST__' + __DAY__) || 'T11:30:00.000000+08:00'
         || '","device_id":"D' || lpad(p::text, 5, '0') || '","distance":0.41,'
         || '"elder_id":"E' || lpad(p::text, 5, '0') || '-' || lpad((k %% 70)::text, 2, '0')
         || '","flags":"","liveness":"pass","margin":0.12,"method":"'
         || CASE WHEN (p * 17 + __DAY__ * 3 + k) %% 100 = 0 THEN 'manual' ELSE 'card' END
         || '","reader":"desk","reason":null,"record_id":"'
         || md5(p || '/' || __DAY__ || '/' || k)::uuid::text
         || '","seq":' || (__DAY__ * 100 + k + 1)
         || ',"service":"meal","service_date":"' || (DATE '__FIRST__' + __DAY__) || '","slot":"'
         || CASE WHEN k < 70 THEN 'lunch' ELSE 'dinner' END || '"}',
       (DATE '__FIRST__' + __DAY__) || 'T13:00:00.000000+08:00',
       true
FROM generate_series(1, __POINTS__) AS p, generate_series(0, 99) AS k
"""

# 0.5 % of lunches also eaten at the neighbouring point (seq continues after the 3,000).
ROAMING_SQL = """
INSERT INTO record (record_id, device_id, seq, service_date, elder_id, service, slot, flags,
                    prev_hash, hash, signature, body, received_at, signature_ok)
SELECT md5('r' || p || '/' || d || '/' || k)::uuid::text,
       'D' || lpad((p %% __POINTS__ + 1)::text, 5, '0'),
       100000 + row_number() OVER (PARTITION BY p ORDER BY d, k),
       DATE '__FIRST__' + d,
       'E' || lpad(p::text, 5, '0') || '-' || lpad(k::text, 2, '0'),
       'meal', 'lunch', '',
       md5('rp' || p || d || k) || md5('rq' || p || d || k),
       md5('rh' || p || d || k) || md5('ri' || p || d || k),
       rpad(md5('rs' || p || d || k), 88, '='),
       '{"method":"card","visitor":true,"elder_id":"E' || lpad(p::text, 5, '0') || '"}',
       (DATE '__FIRST__' + d) || 'T14:00:00.000000+08:00',
       true
FROM generate_series(1, __POINTS__) AS p, generate_series(0, 29) AS d, generate_series(0, 69) AS k
WHERE (p * 13 + d * 5 + k) %% 200 = 0
"""


# The claims ingest writes with those records (sync.platform.ingest.claim_kind/mark_claims):
# kind 1 manual, 2 flagged, 0 clean; every clean home record claims its slot (one per elder,
# slot and day at its own point), and is contested where the same lunch was also eaten at the
# neighbouring point (ROAMING_SQL).
HOME_MANUAL = "(p * 17 + __DAY__ * 3 + k) %% 100 = 0"
HOME_FLAGGED = "(p * 31 + __DAY__ * 7 + k) %% 100 = 1"
ROAMED = "(p * 13 + __DAY__ * 5 + k) %% 200 = 0"  # this lunch is also eaten next door
CLAIMS_SQL = f"""
INSERT INTO meal_claim (service_date, record_id, point_id, elder_id, service, slot, kind,
                        claimed, contested, flags, signature_ok, received_at)
SELECT DATE '__FIRST__' + __DAY__,
       md5(p || '/' || __DAY__ || '/' || k)::uuid::text,
       'P' || lpad(p::text, 5, '0'),
       'E' || lpad(p::text, 5, '0') || '-' || lpad((k %% 70)::text, 2, '0'),
       'meal',
       CASE WHEN k < 70 THEN 'lunch' ELSE 'dinner' END,
       CASE WHEN {HOME_MANUAL} THEN 1 WHEN {HOME_FLAGGED} THEN 2 ELSE 0 END,
       NOT ({HOME_MANUAL} OR {HOME_FLAGGED}),
       NOT ({HOME_MANUAL} OR {HOME_FLAGGED}) AND k < 70 AND {ROAMED},
       CASE WHEN {HOME_FLAGGED} THEN 'no_face' ELSE '' END,
       true,
       CASE WHEN NOT ({HOME_MANUAL} OR {HOME_FLAGGED}) AND NOT (k < 70 AND {ROAMED}) THEN NULL
            ELSE (DATE '__FIRST__' + __DAY__) || 'T13:00:00.000000+08:00' END
FROM generate_series(1, __POINTS__) AS p, generate_series(0, 99) AS k
"""
# The roaming lunch (received an hour after the home point's) claims the slot only where the
# home record of that lunch (k < 70: elder k) was manual or flagged.
ROAMING_CLAIMS_SQL = f"""
INSERT INTO meal_claim (service_date, record_id, point_id, elder_id, service, slot, kind,
                        claimed, contested, flags, signature_ok, received_at)
SELECT DATE '__FIRST__' + d,
       md5('r' || p || '/' || d || '/' || k)::uuid::text,
       'P' || lpad((p %% __POINTS__ + 1)::text, 5, '0'),
       'E' || lpad(p::text, 5, '0') || '-' || lpad(k::text, 2, '0'),
       'meal', 'lunch', 0,
       ({HOME_MANUAL.replace("__DAY__", "d")} OR {HOME_FLAGGED.replace("__DAY__", "d")}),
       false, '', true,
       CASE WHEN {HOME_MANUAL.replace("__DAY__", "d")} OR {HOME_FLAGGED.replace("__DAY__", "d")}
            THEN NULL ELSE (DATE '__FIRST__' + d) || 'T14:00:00.000000+08:00' END
FROM generate_series(1, __POINTS__) AS p, generate_series(0, 29) AS d, generate_series(0, 69) AS k
WHERE (p * 13 + d * 5 + k) %% 200 = 0
"""


def _setup(conn: Any, points: int) -> None:
    from sqlalchemy import text

    now = "2026-10-01T00:00:00+08:00"
    conn.execute(text(
        "INSERT INTO meal_point (point_id, township, name, timezone, created_at, created_by) "
        "SELECT 'P' || lpad(p::text, 5, '0'), 'T' || lpad((p % 100)::text, 3, '0'), "
        "'助餐点' || p, 'Asia/Shanghai', :now, 'bench' FROM generate_series(1, :n) AS p"
    ), {"now": now, "n": points})  # fmt: skip
    conn.execute(text(
        "INSERT INTO device (device_id, point_id, token_sha256, public_key, registered_at, "
        "status, contiguous_seq, held_count) "
        "SELECT 'D' || lpad(p::text, 5, '0'), 'P' || lpad(p::text, 5, '0'), "
        "md5('t' || p) || md5('u' || p), rpad(md5('k' || p), 44, '='), :now, 'active', 0, 0 "
        "FROM generate_series(1, :n) AS p"
    ), {"now": now, "n": points})  # fmt: skip
    conn.execute(text(
        "INSERT INTO roster_entry (point_id, elder_id, name, id_number_masked, card_uid, "
        "group_name, contact_phone, status, agreement_signed, version) "
        "SELECT 'P' || lpad(p::text, 5, '0'), "
        "'E' || lpad(p::text, 5, '0') || '-' || lpad(j::text, 2, '0'), '老人' || j, "
        "'141129********0000', 'A' || lpad(to_hex(p * 100 + j), 7, '0'), '一组', '', "
        "CASE WHEN (p + j) % 100 = 0 THEN 'suspended' ELSE 'active' END, true, 1 "
        "FROM generate_series(1, :n) AS p, generate_series(0, 69) AS j"
    ), {"n": points})  # fmt: skip
    conn.execute(text(
        "INSERT INTO subsidy_rate (service, slot, effective_from, amount, set_by, set_at, note) "
        "VALUES ('meal', 'lunch', DATE '2026-01-01', '5.00', 'bench', :now, ''), "
        "('meal', 'dinner', DATE '2026-01-01', '4.00', 'bench', :now, ''), "
        "('meal', 'lunch', DATE '2026-11-16', '5.50', 'bench', :now, '')"
    ), {"now": now})  # fmt: skip


def _sql(template: str, points: int, day: int = 0) -> str:
    """Our own integers and date into the statement (no user input; the JSON in it has colons
    that bound-parameter parsing would take for names)."""
    return (
        template.replace("__DAY__", str(day))
        .replace("__FIRST__", FIRST_DAY.isoformat())
        .replace("__POINTS__", str(points))
    )


def _generate(engine: Any, points: int, ctx: Context) -> float:
    from sqlalchemy import text

    t0 = time.perf_counter()
    with engine.begin() as conn:
        _setup(conn, points)
    for day in range(DAYS):
        with engine.begin() as conn:
            conn.exec_driver_sql(_sql(RECORDS_SQL, points, day))
            conn.exec_driver_sql(_sql(CLAIMS_SQL, points, day))
        log.warning("settle: generated day %d of %d", day + 1, DAYS)
    with engine.begin() as conn:
        conn.exec_driver_sql(_sql(ROAMING_SQL, points))
        conn.exec_driver_sql(_sql(ROAMING_CLAIMS_SQL, points))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - t0


def _generated(engine: Any, points: int) -> bool:
    """The month at this scale is already in the database (BENCH_SETTLE_DB)."""
    from sqlalchemy import inspect, text

    if not inspect(engine).has_table("meal_claim"):
        return False
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM meal_point")).scalar_one()
    return bool(have == points)


def _sizes(engine: Any) -> dict[str, str]:
    from sqlalchemy import text

    out = {}
    with engine.connect() as conn:
        out["records"] = f"{conn.execute(text('SELECT count(*) FROM record')).scalar_one():,}"
        out["claims"] = f"{conn.execute(text('SELECT count(*) FROM meal_claim')).scalar_one():,}"
        for table in ("record", "meal_claim"):
            for fn in ("pg_table_size", "pg_total_relation_size"):
                out[f"{table} {fn}"] = conn.execute(
                    text(f"SELECT pg_size_pretty({fn}('{table}'))")
                ).scalar_one()
    return out


def _timed(engine: Any, fn: Any, runs: int, label: str) -> tuple[list[float], Any, list[Any]]:
    """`runs` timings of fn(session, MONTH); the last result; the statements of the last run."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    statements: list[tuple[float, str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        conn.info["t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((time.perf_counter() - conn.info["t0"], statement, params))

    timings = []
    result = None
    for _ in range(runs):
        statements.clear()
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            with Session(engine) as session:
                t0 = time.perf_counter()
                result = fn(session, MONTH)
                timings.append(time.perf_counter() - t0)
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
        log.warning("settle: %s %.1f s", label, timings[-1])
    return timings, result, list(statements)


def _same(a: Any, b: Any) -> str:
    """'' when both settlements have the same lines and exceptions, else what differs."""
    if a.lines != b.lines:
        return f"lines differ ({len(a.lines):,} vs {len(b.lines):,})"
    key = [(e.record_id, e.kind, e.detail) for e in a.exceptions]
    other = [(e.record_id, e.kind, e.detail) for e in b.exceptions]
    if key != other:
        return f"exceptions differ ({len(key):,} vs {len(other):,})"
    return ""


def _measure(engine: Any, full: bool) -> dict[str, Any]:
    """Both paths timed on the same data, compared, compute's slowest statement explained,
    and (below full scale, or with BENCH_SETTLE_BACKFILL) the claims rebuilt by the schema
    upgrade and compared again."""
    from sqlalchemy import text

    from sync.platform import schema_upgrade, settlement

    sizes = _sizes(engine)
    new_t, new, statements = _timed(engine, settlement.compute, 2, "claims")
    # BENCH_SETTLE_RECORDS_RUNS=0 re-times only the claims on a kept month (the records path
    # of the same data was timed by an earlier run).
    runs = int(os.environ.get("BENCH_SETTLE_RECORDS_RUNS") or (1 if full else 2))
    old_t, old = [float("nan")], None
    if runs:
        old_t, old, _ = _timed(engine, settlement.compute_from_records, runs, "records")
    differs = _same(new, old) if old is not None else ""
    if differs:
        log.error("settle: the two paths disagree: %s", differs)
    # EXPLAIN ANALYZE of compute's slowest statement (its own SQL and parameters).
    _, slowest, params = max(statements, key=lambda st: st[0])
    with engine.connect() as conn:
        plan = [
            str(r[0]) for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + slowest, params)
        ]
    backfill_s = None
    if not full or os.environ.get("BENCH_SETTLE_BACKFILL"):
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE meal_claim"))
        t0 = time.perf_counter()
        schema_upgrade.upgrade(engine)
        backfill_s = time.perf_counter() - t0
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE meal_claim"))
        _, rebuilt, _ = _timed(engine, settlement.compute, 1, "claims after backfill")
        again = _same(rebuilt, old if old is not None else new)
        differs = differs or (f"after the backfill: {again}" if again else "")
    return {
        "sizes": sizes, "new_t": new_t, "new": new, "old_t": old_t, "old": old,
        "differs": differs, "plan": plan, "backfill_s": backfill_s,
    }  # fmt: skip


def run(ctx: Context) -> list[Row]:
    from bench.pg import running_postgres
    from sync.platform.app import make_platform_engine
    from sync.platform.signature_check import ensure_index
    from sync.platform.tables import PlatformBase

    scale = float(os.environ.get("BENCH_SETTLE_SCALE") or ctx.size(0.002, 0.1))
    points = max(10, round(PROVINCE_POINTS * scale))
    full = scale >= 1
    given = os.environ.get("BENCH_SETTLE_DB")
    with contextlib.ExitStack() as stack:
        if given:  # a database kept between runs: the month is generated once
            db_url = given
        else:
            pg = stack.enter_context(
                running_postgres({"work_mem": "64MB", "maintenance_work_mem": "512MB"})
            )
            db_url = pg.new_database()
        engine = make_platform_engine(db_url)
        if _generated(engine, points):
            gen_s = float("nan")
            log.warning("settle: reusing the month already generated in BENCH_SETTLE_DB")
        else:
            PlatformBase.metadata.create_all(engine)
            ensure_index(engine)
            gen_s = _generate(engine, points, ctx)
        m = _measure(engine, full)
        engine.dispose()
    sizes, new_t, new, old_t, old = m["sizes"], m["new_t"], m["new"], m["old_t"], m["old"]
    differs, plan, backfill_s = m["differs"], m["plan"], m["backfill_s"]
    assert new is not None
    factor = 1 / scale
    best_new = min(new_t)
    best_old = None if old is None else min(old_t)
    old_s = "not timed in this run" if old is None else ", ".join(f"{t:.1f} s" for t in old_t)
    made = "kept from an earlier run" if math.isnan(gen_s) else f"generated in {gen_s:.0f} s"
    ctx.profiles["EXPLAIN ANALYZE, the slowest statement of settlement.compute"] = "\n".join(plan)
    ctx.note(
        f"Scale {scale:g} of a province: {points:,} points, {sizes['records']} records and "
        f"{sizes['claims']} claims in {MONTH} (record {sizes['record pg_table_size']}, "
        f"{sizes['record pg_total_relation_size']} with indexes; meal_claim "
        f"{sizes['meal_claim pg_table_size']}, {sizes['meal_claim pg_total_relation_size']} "
        f"with indexes), made in PostgreSQL with generate_series ({made}). "
        f"settlement.compute (claims): {', '.join(f'{t:.1f} s' for t in new_t)}; "
        f"compute_from_records (ranking the records): {old_s}; "
        f"{len(new.lines):,} lines, {new.total_meals:,} subsidised meals, "
        f"{len(new.exceptions):,} exceptions, total {new.total_amount} yuan; "
        + (
            f"THE TWO PATHS DISAGREE: {differs}."
            if differs
            else ("both paths agree exactly." if old is not None else "")
        )
        + (
            f" Schema upgrade of the month (create meal_claim, backfill from the records): "
            f"{backfill_s:.0f} s, and the settlement from the backfilled claims agrees."
            if backfill_s is not None
            else ""
        )
        + (f" Province (x{factor:g}) extrapolated linearly." if not full else "")
    )
    common: dict[str, Any] = {"bench": "settle"}
    label = "" if full else " (extrapolated)"
    rows = [
        Row(metric=f"month at scale {scale:g} ({sizes['records']} records): settlement from "
            "claims", ours=best_new, unit="s", n=len(new_t), baseline=best_old,
            baseline_label="ranking the records (compute_from_records)", **common),
        Row(metric="province month (30M records): settlement" + label, ours=best_new * factor,
            unit="s", baseline=None if best_old is None else best_old * factor,
            baseline_label="ranking the records (compute_from_records)", budget=BUDGET,
            **common),
    ]  # fmt: skip
    if not math.isnan(gen_s):
        rows.append(Row(metric=f"generate the month at scale {scale:g}", ours=gen_s, unit="s",
                        **common))  # fmt: skip
    if backfill_s is not None:
        rows.append(Row(metric=f"schema upgrade: backfill the claims at scale {scale:g}",
                        ours=backfill_s, unit="s", **common))  # fmt: skip
    return rows
