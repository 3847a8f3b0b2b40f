"""Bring a platform database made by an older reference platform up to the current tables.

The reference platform has no migration tool; what changed since its first version is only
added tables (created by create_all) and added columns, which this adds with their defaults:
`device.status` ('active'), `enrolled_with`, `first_seen_at`, `contiguous_seq` and `held_count`
(0: the completeness marks start from the rows held now), `alert.point_id` and `evidence`.
Existing device tokens, keys and records keep working unchanged.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, inspect, text
from sqlalchemy.schema import Column

from sync.platform.tables import PlatformBase

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
    if added:
        log.warning("platform database upgraded: added %s", ", ".join(added))
    return added
