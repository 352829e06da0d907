"""The local store's tables and triggers, and the one-time rebuild of an outdated text index.

The full-text index keeps prefix indexes for prefixes of 2 to 8 characters: recall searches
every word of 3 or more characters as a prefix (`"postgres"*` finds PostgreSQL), and without a
prefix index of the stemmed word's exact length FTS5 merges the lists of every word that starts
with it on each query, over the whole store (`"use"*` is the prefix `us`: users, usual, usage...).
With them, a prefix query costs about what a whole-word query costs. Stores made with another
index definition are reindexed once, the first time a writer opens them.
"""

from __future__ import annotations

import sqlite3

# The definition as SQLite keeps it in sqlite_master (without IF NOT EXISTS).
FTS_TABLE = """CREATE VIRTUAL TABLE memories_fts USING fts5(
    text, content='memories', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2', prefix='2 3 4 5 6 7 8'
)"""
# The in-memory copy of recent memories each reader keeps (recent_rows.py): the same tokenizer,
# its own content, no prefix indexes (it is small).
RECENT_FTS_TABLE = """CREATE VIRTUAL TABLE recent USING fts5(
    text, tokenize='porter unicode61 remove_diacritics 2'
)"""
_FTS_SQL = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'memories_fts'"
_TABLES = """
CREATE TABLE IF NOT EXISTS memories (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS memories_scope_created ON memories (scope, created_at);
CREATE INDEX IF NOT EXISTS memories_dedup ON memories (scope, json_extract(metadata, '$.dedup'));
"""
_TRIGGERS = """
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
SCHEMA = _TABLES + FTS_TABLE.replace("TABLE", "TABLE IF NOT EXISTS", 1) + ";" + _TRIGGERS


def fts_is_current(conn: sqlite3.Connection) -> bool:
    row = conn.execute(_FTS_SQL).fetchone()
    return row is None or row[0] == FTS_TABLE


def rebuild_fts_if_outdated(conn: sqlite3.Connection) -> bool:
    """Recreate the text index with the current definition and index every memory again, in
    one transaction (readers keep using the old index until it commits). True if it did."""
    if fts_is_current(conn):
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        if fts_is_current(conn):  # another process was first
            conn.execute("ROLLBACK")
            return False
        conn.execute("DROP TABLE memories_fts")
        conn.execute(FTS_TABLE)
        conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')")
        conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True
