"""Bring a platform database made by an older reference platform up to the current tables.

The reference platform has no migration tool; what changed since its first version is only
added tables (created by create_all) and added columns, which this adds with their defaults:
`device.status` ('active'), `enrolled_with`, `first_seen_at`, `contiguous_seq` and `held_count`
(0: the completeness marks start from the rows held now), `alert.point_id` and `evidence`.
Existing device tokens, keys and records keep working unchanged.

One added table needs its rows: `meal_claim`, the settlement's narrow copy of the records kept
at ingest since it exists. When it is missing it is created here and filled from the stored
records in one statement (the first clean record of each elder, service, slot and day, in the
order the platform received them, holds the slot), so a month settles the same before and
after the upgrade.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    inspect,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.schema import Column

from sync.platform.tables import Device, MealClaim, PlatformBase, Record, SettlementMonth

log = logging.getLogger(__name__)


def _default_sql(column: Column[object]) -> str:
    default = column.default
    value = getattr(default, "arg", None) if default is not None else None
    if isinstance(value, bool):
        return f" DEFAULT {'TRUE' if value else 'FALSE'}"
    if isinstance(value, int):
        return f" DEFAULT {value}"
    if isinstance(value, str):
        return " DEFAULT '" + value.replace("'", "''") + "'"
    return ""


def upgrade(engine: Engine) -> list[str]:
    """Add missing columns; returns "table.column" for each one added."""
    added = []
    with engine.begin() as conn:
        # One connection for looking and altering: on SQLite every transaction takes the write
        # lock (BEGIN IMMEDIATE), so a second one would wait for the first.
        inspector = inspect(conn)
        for table in PlatformBase.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(
                    text(
                        f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'
                        + _default_sql(column)
                    )
                )
                added.append(f"{table.name}.{column.name}")
        if inspector.has_table("record") and not inspector.has_table("meal_claim"):
            # With every other missing table (the backfill reads settlement_month).
            PlatformBase.metadata.create_all(conn)
            count = backfill_claims(conn)
            added.append(f"meal_claim ({count} rows from the stored records)")
    if added:
        log.warning("platform database upgraded: added %s", ", ".join(added))
    return added


def backfill_claims(conn: Connection) -> int:
    """meal_claim rows for every stored record (same kinds and claims as ingest makes)."""
    # The body test the records-scan settlement makes; bodies are canonical JSON.
    manual = Record.body.like('%"method":"manual"%')
    flagged = or_(Record.flags.like("%no_face%"), Record.flags.like("%face_mismatch%"))
    # Arrived after its month was closed: listed as late in a later month (ingest's LATE).
    late = exists(
        select(1).where(
            SettlementMonth.first_day <= Record.service_date,
            SettlementMonth.last_day >= Record.service_date,
            SettlementMonth.closed_at < Record.received_at,
        )
    )
    kind = case((late, 3), (manual, 1), (flagged, 2), else_=0).label("kind")
    base = (
        select(
            Record.service_date, Record.record_id, Device.point_id, Record.elder_id,
            Record.service, Record.slot, kind, Record.flags, Record.signature_ok,
            Record.received_at,
        )
        .join(Device, Device.device_id == Record.device_id)
        .subquery("base")
    )  # fmt: skip
    c = base.c
    same_slot = [c.elder_id, c.service, c.slot, c.service_date, c.kind]
    rank = (
        func.row_number()
        .over(partition_by=same_slot, order_by=[c.received_at, c.record_id])
        .label("rn")
    )
    rivals = func.count().over(partition_by=same_slot).label("rivals")
    ranked = select(base, rank, rivals).subquery("ranked")
    r = ranked.c
    claimed = case((and_(r.kind == 0, r.rn == 1), True), else_=False)
    contested = case((and_(r.kind == 0, r.rn == 1, r.rivals > 1), True), else_=False)
    columns = ["service_date", "record_id", "point_id", "elder_id", "service", "slot", "kind"]
    columns += ["claimed", "contested", "flags", "signature_ok", "received_at"]
    plain = and_(r.kind == 0, r.rn == 1, r.rivals == 1)  # a claim nobody contests
    source = select(
        r.service_date, r.record_id, r.point_id, r.elder_id, r.service, r.slot, r.kind,
        claimed, contested, r.flags, r.signature_ok,
        case((plain, null()), else_=r.received_at),
    )  # fmt: skip
    result = conn.execute(insert(MealClaim).from_select(columns, source))
    # The manual check-ins' reason and caregiver, from their bodies (about 1 % of records).
    manual_rows = conn.execute(
        select(Record.record_id, Record.body, Record.service_date)
        .join(MealClaim, MealClaim.record_id == Record.record_id)
        .where(MealClaim.kind == 1)
    ).all()
    notes = []
    for record_id, body, day in manual_rows:
        fields = json.loads(body)
        notes.append(
            {"rid": record_id, "day": day, "note_reason": fields.get("reason"),
             "note_caregiver": fields.get("caregiver_id")}
        )  # fmt: skip
    if notes:
        conn.execute(
            update(MealClaim)
            .where(MealClaim.service_date == bindparam("day"))
            .where(MealClaim.record_id == bindparam("rid"))
            .values(reason=bindparam("note_reason"), caregiver_id=bindparam("note_caregiver")),
            notes,
        )
    return int(result.rowcount or 0)
