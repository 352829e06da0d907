"""The local store's schema as append-only numbered migrations, and the text index's rebuild.

Migrations are recorded in `_memory_migrations` and run once, in one write transaction, by
the first connection that finds one missing (another process that got there first is noticed
inside the transaction). Never edit a migration that has shipped: add the next one.
`m001_initial` is the schema every earlier release created with `IF NOT EXISTS`, so on a store
from such a release it changes nothing and is only recorded.

The full-text index keeps prefix indexes for prefixes of 2 to 8 characters: recall searches
every word of 3 or more characters as a prefix (`"postgres"*` finds PostgreSQL), and without a
prefix index of the stemmed word's exact length FTS5 merges the lists of every word that starts
with it on each query. Stores made with another index definition are reindexed once, the first
time a writer opens them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

MIGRATIONS_TABLE = "_memory_migrations"
_CREATE_MIGRATIONS_SQL = """
CREATE TABLE IF NOT EXISTS _memory_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)
"""
_APPLIED_SQL = "SELECT name FROM _memory_migrations"
_RECORD_SQL = "INSERT INTO _memory_migrations (name, applied_at) VALUES (?, ?)"

# The definition as SQLite keeps it in sqlite_master (without IF NOT EXISTS).
FTS_TABLE = """CREATE VIRTUAL TABLE memories_fts USING fts5(
    text, content='memories', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2', prefix='2 3 4 5 6 7 8'
)"""
# How many memories were ever deleted or changed, by any process.
CHANGES_SQL = "SELECT coalesce((SELECT changes FROM memories_version), 0)"
_FTS_SQL = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'memories_fts'"
_M001_TABLES = """
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
_M001_TRIGGERS = """
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
END;
"""
# Rows from before m002 hold only "User: ...\nAssistant: ..." text: split it into the parts.
_M002 = """
ALTER TABLE memories ADD COLUMN user_text TEXT;
ALTER TABLE memories ADD COLUMN assistant_text TEXT;
ALTER TABLE memories ADD COLUMN client TEXT;
ALTER TABLE memories ADD COLUMN note TEXT;
ALTER TABLE memories ADD COLUMN embedding BLOB;
DROP TRIGGER IF EXISTS memories_version_au;
CREATE TRIGGER memories_version_au AFTER UPDATE OF scope, text ON memories BEGIN
    INSERT INTO memories_version (id, changes) VALUES (1, 1)
    ON CONFLICT (id) DO UPDATE SET changes = changes + 1;
END;
UPDATE memories SET
    user_text = substr(text, 7, instr(text, char(10) || 'Assistant: ') - 7),
    assistant_text = substr(text, instr(text, char(10) || 'Assistant: ') + 12)
WHERE text LIKE 'User: %' AND instr(text, char(10) || 'Assistant: ') > 0;
CREATE INDEX memories_unembedded ON memories (rowid) WHERE embedding IS NULL;
"""
# Rows from before m002 still index "User: " and "Assistant: " (a search for `use` or `assist`
# matched every one): keep the parts only, with their lengths for showing the labels again.
_M003 = """
UPDATE memories SET
    text = user_text || char(10) || assistant_text,
    metadata = json_set(metadata, '$.parts',
        json_array(length(user_text), length(assistant_text)))
WHERE user_text IS NOT NULL AND assistant_text IS NOT NULL
    AND text = 'User: ' || user_text || char(10) || 'Assistant: ' || assistant_text;
"""


def m001_initial(conn: sqlite3.Connection) -> None:
    """Memories, their full-text index, and the count of deleted or changed memories."""
    _script(conn, _M001_TABLES)
    conn.execute(FTS_TABLE.replace("TABLE", "TABLE IF NOT EXISTS", 1))
    _script(conn, _M001_TRIGGERS)


def m002_turn_parts_and_vectors(conn: sqlite3.Connection) -> None:
    """The user's and the assistant's text apart, the client, a note, and the embedding
    (float32, filled in the background); changing only an embedding is not a change."""
    _script(conn, _M002)


def m003_unlabeled_text(conn: sqlite3.Connection) -> None:
    """The labels out of the text index for rows an earlier release stored labeled."""
    _script(conn, _M003)


def m004_fact_of(conn: sqlite3.Connection) -> None:
    """The facts drawn from a turn (`memory.extract_model`), by the turn they name: forgetting
    the turn forgets them without reading every memory (94 ms at 110k memories before)."""
    conn.execute(
        "CREATE INDEX IF NOT EXISTS memories_fact_of ON memories "
        "(json_extract(metadata, '$.fact_of')) "
        "WHERE json_extract(metadata, '$.fact_of') IS NOT NULL"
    )


def m005_scope_of_rowid(conn: sqlite3.Connection) -> None:
    """Each memory's length in tokens of its text (`words`, NULL for rows stored before) and,
    with its scope, in an index by rowid: recall checks the scope of each full-text match it
    ranks (and for a common word reads its length), and a row read for it (with its 1.5 KB
    embedding) is a page per match, about 2 us more each at 100k memories than this index."""
    conn.execute("ALTER TABLE memories ADD COLUMN words INTEGER")
    conn.execute("CREATE INDEX memories_scope_of ON memories (rowid, scope, words)")


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[Migration, ...] = (
    m001_initial,
    m002_turn_parts_and_vectors,
    m003_unlabeled_text,
    m004_fact_of,
    m005_scope_of_rowid,
)


def _script(conn: sqlite3.Connection, script: str) -> None:
    """Run `script` statement by statement inside the caller's transaction (executescript
    would commit it)."""
    statements: list[str] = []
    for line in script.strip().splitlines():
        statements.append(line)
        candidate = "\n".join(statements)
        if sqlite3.complete_statement(candidate):
            conn.execute(candidate)
            statements = []


def applied(conn: sqlite3.Connection) -> set[str]:
    conn.execute(_CREATE_MIGRATIONS_SQL)
    return {row[0] for row in conn.execute(_APPLIED_SQL)}


def migrate(conn: sqlite3.Connection, upto: str | None = None) -> list[str]:
    """Apply the missing migrations (up to and including `upto`); the names applied."""
    names = [m.__name__ for m in MIGRATIONS]
    if upto is None and set(names) <= _applied_quietly(conn):
        return []
    conn.execute("BEGIN IMMEDIATE")
    done: list[str] = []
    try:
        present = applied(conn)
        for migration in MIGRATIONS:
            if migration.__name__ not in present:
                migration(conn)
                conn.execute(_RECORD_SQL, (migration.__name__, time.time()))
                done.append(migration.__name__)
            if migration.__name__ == upto:
                break
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return done


def _applied_quietly(conn: sqlite3.Connection) -> set[str]:
    """The applied migrations without writing (a missing table: none)."""
    try:
        return {row[0] for row in conn.execute(_APPLIED_SQL)}
    except sqlite3.OperationalError:
        return set()


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
