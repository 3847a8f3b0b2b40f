"""A platform database too busy to answer is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from sync.platform.app import create_platform_app
from sync.platform.keys import load_or_create_platform_key


def test_locked_database_answers_503_with_retry_after(tmp_path: Path) -> None:
    db = tmp_path / "platform.db"
    app = create_platform_app(
        f"sqlite:///{db}", load_or_create_platform_key(tmp_path / "k.pem"), "operator"
    )
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("PRAGMA busy_timeout=0")
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    app.state.engine.pool.dispose()
    try:
        with TestClient(app) as client:
            # Shorten the wait so the test does not sit out the 10 s busy timeout.
            with app.state.engine.connect() as conn:
                conn.connection.driver_connection.execute("PRAGMA busy_timeout=100")
            # Authentication only reads; registering a meal point must write.
            resp = client.post(
                "/v1/admin/points",
                json={"point_id": "p1", "township": "t1"},
                headers={"Authorization": "Bearer operator"},
            )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == "5"
    assert resp.json() == {"detail": "busy, retry later"}
