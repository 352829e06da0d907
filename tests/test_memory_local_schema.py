"""The local store's numbered migrations: a new store, an upgrade from the last release's
schema (parts split, columns added, nothing lost), and the once-only rebuild of an old index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.local_schema import (
    FTS_TABLE,
    MIGRATIONS,
    fts_is_current,
    migrate,
)

# The schema as the release before numbered migrations created it (copied, never imported).
RELEASED_TABLES = """
CREATE TABLE IF NOT EXISTS memories (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS memories_scope_created ON memories (scope, created_at);
"""
RELEASED_FTS = """CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
    text, content='memories', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2', prefix='2 3 4 5 6 7 8'
)"""
RELEASED_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER IF NOT EXISTS memories_au AFTER UPDATE OF text ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
END;
-- How many memories were ever deleted or rewritten, by any process: kept match windows are
-- only valid while it stays the same (rows are otherwise only appended, with growing rowids).
CREATE TABLE IF NOT EXISTS memories_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    changes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS memories_version_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_version (id, changes) VALUES (1, 1)
    ON CONFLICT (id) DO UPDATE SET changes = changes + 1;
END;
CREATE TRIGGER IF NOT EXISTS memories_version_au AFTER UPDATE ON memories BEGIN
    INSERT INTO memories_version (id, changes) VALUES (1, 1)
    ON CONFLICT (id) DO UPDATE SET changes = changes + 1;
END;"""
OLD_FTS = """CREATE VIRTUAL TABLE memories_fts USING fts5(
    text, content='memories', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2', prefix='3'
)"""


def released_store(path: Path, texts: list[str], fts: str = RELEASED_FTS) -> None:
    """A store as the last release wrote it."""
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASED_TABLES + fts + ";" + RELEASED_TRIGGERS)
        for i, text in enumerate(texts):
            conn.execute(
                "INSERT INTO memories (id, scope, text, created_at) VALUES (?, 'p', ?, ?)",
                (f"m{i}", text, 1000.0 + i),
            )
    conn.close()


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


async def test_a_released_store_is_migrated_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    released_store(path, ["User: we use PostgreSQL 16\nAssistant: ok, noted", "free text"])
    store = LocalMemoryBackend(path)
    try:
        assert [m.id for m in await store.search("p", "postgres", 5)] == ["m0"]
        applied = query(path, "SELECT name FROM _memory_migrations ORDER BY name")
        assert [r[0] for r in applied] == [m.__name__ for m in MIGRATIONS]
        parts = query(path, "SELECT id, user_text, assistant_text, embedding FROM memories")
        assert parts == [
            ("m0", "we use PostgreSQL 16", "ok, noted", None),
            ("m1", None, None, None),
        ]
        await store.add("p", Turn(user="deploys use Terraform", assistant="ok"))
        assert len(await store.search("p", "terraform deploys", 5)) == 1
        assert [m.id for m in await store.export("p")][:2] == ["m0", "m1"]
    finally:
        await store.close()


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    try:
        assert migrate(conn) == [m.__name__ for m in MIGRATIONS]
        assert migrate(conn) == []
        assert fts_is_current(conn)
    finally:
        conn.close()


def test_migrations_stop_where_asked(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    try:
        assert migrate(conn, upto="m001_initial") == ["m001_initial"]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(memories)")}
        assert "embedding" not in columns
        assert migrate(conn) == [
            "m002_turn_parts_and_vectors",
            "m003_unlabeled_text",
            "m004_fact_of",
            "m005_scope_of_rowid",
        ]
    finally:
        conn.close()


def test_forgetting_a_turn_finds_its_facts_through_an_index(tmp_path: Path) -> None:
    from memproxy_cli.memory.local import _FORGET_FACTS_SQL

    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    try:
        migrate(conn)
        plan = conn.execute("EXPLAIN QUERY PLAN " + _FORGET_FACTS_SQL, ("t1",)).fetchall()
        assert "USING INDEX memories_fact_of" in " ".join(str(step[-1]) for step in plan)
    finally:
        conn.close()


async def test_outdated_index_is_rebuilt_by_the_first_writer(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    released_store(
        path, ["User: we use PostgreSQL 16\nAssistant: ok", "User: the cache is Redis"], OLD_FTS
    )
    store = LocalMemoryBackend(path)
    try:
        # Recall reads the old index as it is: a reader never rebuilds.
        assert [m.id for m in await store.search("p", "postgres", 5)] == ["m0"]
        assert query(path, "SELECT sql FROM sqlite_master WHERE name = 'memories_fts'") == [
            (OLD_FTS,)
        ]
        await store.add("p", Turn(user="deploys use Terraform", assistant="ok"))
        assert query(path, "SELECT sql FROM sqlite_master WHERE name = 'memories_fts'") == [
            (FTS_TABLE,)
        ]
        assert [m.id for m in await store.search("p", "postgres", 5)] == ["m0"]
        assert [m.id for m in await store.search("p", "redis", 5)] == ["m1"]
        assert len(await store.search("p", "terraform deploys", 5)) == 1
    finally:
        await store.close()


async def test_a_released_store_no_longer_indexes_the_labels(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    labeled = "User: the useful helper runs Kafka\nAssistant: noted, Kafka it is"
    released_store(path, [labeled, "User: we deploy on Fridays\nAssistant: ok", "free text"])
    before = query(path, "SELECT rowid FROM memories_fts WHERE memories_fts MATCH 'user'")
    assert len(before) == 2  # the labels were indexed
    store = LocalMemoryBackend(path)
    try:
        assert await store.search("p", "user", 5) == []
        assert await store.search("p", "assistant", 5) == []
        assert [m.id for m in await store.search("p", "useful", 5)] == ["m0"]
        assert [m.id for m in await store.search("p", "fridays", 5)] == ["m1"]
        rows = query(path, "SELECT text FROM memories ORDER BY rowid")
        assert rows == [
            ("the useful helper runs Kafka\nnoted, Kafka it is",),
            ("we deploy on Fridays\nok",),
            ("free text",),
        ]
        matched = "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?"
        for word in ("user", "assistant"):
            assert query(path, matched.replace("?", f"'{word}'")) == [(0,)]
        shown = [m.text for m in await store.export("p")]
        assert shown == [labeled, "User: we deploy on Fridays\nAssistant: ok", "free text"]
        recalled = await store.search("p", "kafka", 5)
        assert recalled[0].text.startswith("User: the useful helper runs Kafka")
    finally:
        await store.close()
