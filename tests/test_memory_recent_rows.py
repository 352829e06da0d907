"""A reader's in-memory copy of recent memories finds and scores new matches like the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import memproxy_cli.memory.recent_rows as recent_rows
from memproxy_cli.memory.fts_bm25 import calibrate, new_matches
from memproxy_cli.memory.local_schema import SCHEMA
from memproxy_cli.memory.match_window import rowid
from memproxy_cli.memory.recent_rows import RecentRows


def insert(conn: sqlite3.Connection, text: str, scope: str = "p") -> int:
    cur = conn.execute(
        "INSERT INTO memories (id, scope, text, created_at) VALUES (?, ?, ?, 1000.0)",
        (f"m{text}", scope, text),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "memory.sqlite3", isolation_level=None)
    db.executescript(SCHEMA)
    for i in range(40):
        insert(db, f"the deploy script {'deploys ' * (i % 4)}runs nightly {i}")
    return db


def test_new_matches_and_scores_equal_the_store_index(conn: sqlite3.Connection) -> None:
    copy = RecentRows()
    copy.refresh(conn, 0)
    start = copy.last
    assert copy.covers(start) and not copy.covers(start - 1)
    for text in ("deploy deploy now", "unrelated billing note", "Deployed \x1d twice: deploys"):
        insert(conn, text, scope="q" if "billing" in text else "p")
    copy.refresh(conn, 0)
    sql = "SELECT rowid, bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ?"
    calibration = calibrate(conn, '"deploy"*', 0, dict(conn.execute(sql, ('"deploy"*',))))
    assert calibration is not None
    mine = copy.matches('"deploy"*', start, calibration)
    store = new_matches(conn, '"deploy"*', start + 1, calibration)
    assert mine is not None and store is not None
    assert [rowid(m) for m in mine] == [rowid(m) for m in store] == [start + 1, start + 3]
    for a, b in zip(mine, store, strict=True):
        assert a[0] == pytest.approx(b[0], rel=1e-12)
        assert a[2:] == b[2:]  # scope, created_at
    assert copy.rows[start + 2][1] == "q"


def test_copy_starts_over_after_a_delete_or_when_full(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = RecentRows()
    copy.refresh(conn, 0)
    gone = insert(conn, "deploy soon")
    copy.refresh(conn, 0)
    assert gone in copy.rows
    conn.execute("DELETE FROM memories WHERE rowid = ?", (gone,))
    copy.refresh(conn, 1)  # the store's count of deleted memories moved
    assert copy.rows == {} and copy.base == gone - 1 and not copy.covers(gone - 2)
    again = insert(conn, "deploy later")  # takes the deleted row's rowid
    copy.refresh(conn, 1)
    assert again == gone and copy.rows[again][2] == "deploy later"
    monkeypatch.setattr(recent_rows, "MAX_ROWS", 2)
    for i in range(3):
        insert(conn, f"note {i}")
    copy.refresh(conn, 1)
    assert copy.rows == {} and copy.base == copy.last
