"""A store made with an older text index is reindexed once by its first writer, losing nothing."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.local_schema import FTS_TABLE, RECENT_FTS_TABLE, SCHEMA, fts_is_current

OLD_FTS = """CREATE VIRTUAL TABLE memories_fts USING fts5(
    text, content='memories', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2', prefix='3'
)"""


def old_store(path: Path, texts: list[str]) -> None:
    """A store as an earlier release wrote it: same tables, a text index with other options."""
    with sqlite3.connect(path) as conn:
        current = FTS_TABLE.replace("TABLE", "TABLE IF NOT EXISTS")
        conn.executescript(SCHEMA.replace(current, OLD_FTS))
        for i, text in enumerate(texts):
            conn.execute(
                "INSERT INTO memories (id, scope, text, created_at) VALUES (?, 'p', ?, ?)",
                (f"m{i}", text, 1000.0 + i),
            )
    conn.close()


def fts_definition(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'memories_fts'").fetchone()
    conn.close()
    return str(row[0])


async def test_outdated_index_is_rebuilt_by_the_first_writer(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    old_store(path, ["User: we use PostgreSQL 16\nAssistant: ok", "User: the cache is Redis"])
    assert fts_definition(path) == OLD_FTS
    store = LocalMemoryBackend(path)
    try:
        # Recall reads the old index as it is: a reader never rebuilds.
        assert [m.id for m in await store.search("p", "postgres", 5)] == ["m0"]
        assert fts_definition(path) == OLD_FTS
        await store.add("p", Turn(user="deploys use Terraform", assistant="ok"))
        assert fts_definition(path) == FTS_TABLE
        assert [m.id for m in await store.search("p", "postgres", 5)] == ["m0"]
        assert [m.id for m in await store.search("p", "redis", 5)] == ["m1"]
        assert len(await store.search("p", "terraform deploys", 5)) == 1
    finally:
        await store.close()


def test_new_stores_get_the_current_index(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        assert fts_is_current(conn)
    conn.close()
    assert fts_definition(path) == FTS_TABLE


def test_readers_copy_tokenizes_like_the_store() -> None:
    tokenize = re.compile(r"tokenize='[^']*'")
    assert tokenize.findall(RECENT_FTS_TABLE) == tokenize.findall(FTS_TABLE)
