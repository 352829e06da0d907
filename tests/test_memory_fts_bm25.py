"""Full-text scoring of the local store: FTS5's bm25() for rare terms, BM25 by length for a
common one (fts_bm25.py), and what recall keeps whichever is used."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from memproxy_cli.memory import fts_bm25, local_search
from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.fts_bm25 import common_term, totals, varints
from memproxy_cli.memory.local import LocalMemoryBackend


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalMemoryBackend]:
    backend = LocalMemoryBackend(tmp_path / "memory.sqlite3", half_life_days=30.0)
    yield backend
    backend.close_sync()


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of 3 matches: a term held by 4 memories or more is a common one."""
    monkeypatch.setattr(local_search, "MATCH_BUDGET", 3)
    monkeypatch.setattr(local_search, "RANK_WINDOW", 3)


def add(store: LocalMemoryBackend, scope: str, *users: str, at: float = 1000.0) -> list[str]:
    turns = [Turn(user=u, assistant="ok", created_at=at + i) for i, u in enumerate(users)]
    return store._add_batch([(scope, t) for t in turns])


def reader(store: LocalMemoryBackend) -> sqlite3.Connection:
    store._connection()  # the schema
    return sqlite3.connect(store.path, isolation_level=None)


def ids(store: LocalMemoryBackend, scope: str, query: str, k: int = 10) -> list[str]:
    return [m.id for m in store.search_sync(scope, query, k, now=2000.0)]


def test_varints_decode_sqlite_encodings() -> None:
    assert varints(bytes([0x1B])) == [27]
    assert varints(bytes([0x81, 0x00])) == [128]
    assert varints(bytes([0xFF, 0x7F])) == [16383]
    assert varints(bytes([0x86, 0xDB, 0x30, 0x81, 0xB4, 0xD3, 0x40])) == [110000, 2959808]
    assert varints(bytes([0xFF] * 8 + [0x01])) == [(1 << 64) - 255]


def test_totals_are_the_index_size_and_average_length(store: LocalMemoryBackend) -> None:
    conn = reader(store)
    assert totals(conn) == (0, 0.0)
    add(store, "p", "one two three", "four five")
    add(store, "q", "six")
    # "User"/"Assistant" labels are not indexed: each memory is its statement plus "ok".
    assert totals(conn) == (3, (4 + 3 + 2) / 3)


def test_common_term_scores_are_fts5_bm25_for_single_mentions(store: LocalMemoryBackend) -> None:
    add(store, "p", "kafka", "kafka is the queue", "we moved the queue to kafka last week")
    add(store, "p", "nothing here at all", "something else entirely")
    conn = reader(store)
    expected = dict(
        conn.execute(
            "SELECT rowid, bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ?",
            ('"kafka"*',),
        )
    )
    got = common_term(conn, "p", "kafka", 3, 10, 10)
    assert got.keys() == expected.keys()
    for rowid, score in expected.items():
        assert got[rowid] == pytest.approx(score, rel=1e-12)
    assert list(got) == sorted(got, key=lambda r: got[r])  # best first


@pytest.mark.parametrize("stored_before", [False, True])
def test_common_term_orders_by_length_across_varint_sizes(
    store: LocalMemoryBackend, stored_before: bool
) -> None:
    lengths = [300, 5, 128, 127, 20000, 129, 16384]
    add(store, "p", *(" ".join(["kafka"] + ["word"] * (n - 2)) for n in lengths))
    conn = reader(store)
    if stored_before:  # rows from before m005: the length from the text index
        conn.execute("UPDATE memories SET words = NULL")
    got = common_term(conn, "p", "kafka", len(lengths), 10, 10)
    by_length = sorted(range(len(lengths)), key=lambda i: lengths[i])
    assert list(got) == [i + 1 for i in by_length]  # rowids from 1, in the order added


@pytest.mark.parametrize(
    "text", ["kafka", "Kafka, the queue (v2.1)!", "naïve café_au_lait 北京 1/2", "a\nb\tc", ""]
)
def test_a_stored_length_is_the_text_index_length(store: LocalMemoryBackend, text: str) -> None:
    store._add_batch([("p", Turn(user=text, assistant="ok"))])
    conn = reader(store)
    words, size = conn.execute(
        "SELECT m.words, d.sz FROM memories AS m JOIN memories_fts_docsize AS d ON d.id = m.rowid"
    ).fetchone()
    assert words == varints(size)[0]


def test_common_term_ties_go_to_the_newest(store: LocalMemoryBackend) -> None:
    add(store, "p", "kafka one", "kafka two", "kafka six")
    assert list(common_term(reader(store), "p", "kafka", 3, 10, 2)) == [3, 2]


def test_a_rare_term_outranks_a_common_one(store: LocalMemoryBackend) -> None:
    add(store, "p", *(f"the deploy of build {i}" for i in range(30)), at=1000.0)
    (rare,) = add(store, "p", "the deploy uses terraform", at=900.0)
    assert ids(store, "p", "terraform deploy")[0] == rare


@pytest.mark.usefixtures("small_budget")
def test_a_common_term_ranks_its_newest_matches_by_length(store: LocalMemoryBackend) -> None:
    add(store, "p", "redis", at=100.0)  # the shortest, but older than the window
    long, short, medium = add(
        store,
        "p",
        "redis runs the cache we use in staging for the tests",
        "redis cache",
        "redis cache in staging",
        at=1000.0,
    )
    conn = reader(store)
    found = local_search.LocalSearch(30.0)._lexical(conn, "p", ["redis"])
    assert list(found) == [_rowid(conn, m) for m in (short, medium, long)]


@pytest.mark.usefixtures("small_budget")
def test_a_rare_term_is_chosen_over_a_common_one(store: LocalMemoryBackend) -> None:
    add(store, "p", *(f"the deploy of build {i}" for i in range(30)), at=1000.0)
    (rare,) = add(store, "p", "the deploy uses terraform", at=900.0)
    assert ids(store, "p", "terraform deploy") == [rare]


def _rowid(conn: sqlite3.Connection, memory_id: str) -> int:
    return int(conn.execute("SELECT rowid FROM memories WHERE id = ?", (memory_id,)).fetchone()[0])


@pytest.mark.usefixtures("small_budget")
def test_a_common_term_keeps_to_the_scope(store: LocalMemoryBackend) -> None:
    (mine,) = add(store, "p", "kafka runs the queue", at=100.0)
    add(store, "other", *(f"kafka topic {i}" for i in range(20)), at=1000.0)
    assert ids(store, "p", "kafka") == [mine]
    assert ids(store, "nobody", "kafka") == []
    assert all(m.scope == "other" for m in store.search_sync("other", "kafka", 50, now=2000.0))


@pytest.mark.usefixtures("small_budget")
def test_a_common_term_stored_a_moment_ago_is_found(store: LocalMemoryBackend) -> None:
    add(store, "p", *(f"kafka topic {i} with a long description of it" for i in range(10)))
    assert ids(store, "p", "kafka")  # counts remembered: kafka is common
    (new,) = add(store, "p", "kafka moved to the new cluster", at=1500.0)
    assert new in ids(store, "p", "kafka")


@pytest.mark.parametrize("sql", [fts_bm25._RANKED_SQL, fts_bm25._SHORTEST_SQL])
def test_a_match_scope_comes_from_the_index_not_its_row(
    store: LocalMemoryBackend, sql: str
) -> None:
    named = {"match": '"x"', "scope": "p", "window": 1, "limit": 1, "bytes": b""}
    params = named if ":match" in sql else ('"x"', "p", 1, 1)
    plan = reader(store).execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    assert "COVERING INDEX memories_scope_of" in " ".join(str(step[-1]) for step in plan)


def test_a_row_without_a_length_ranks_last_and_fails_nothing(store: LocalMemoryBackend) -> None:
    # A row stored before m005 (no `words`) whose docsize record is gone: it is taken as the
    # longest, not as a NULL length that sorted first and failed the whole recall.
    add(store, "p", "kafka one", "kafka two three", "kafka")
    conn = reader(store)
    conn.execute("UPDATE memories SET words = NULL")
    conn.execute("DELETE FROM memories_fts_docsize WHERE id = 3")
    assert list(common_term(conn, "p", "kafka", 3, 10, 10)) == [1, 2, 3]


def test_totals_without_tokens_rank_nothing(store: LocalMemoryBackend) -> None:
    add(store, "p", "kafka one", "kafka two")
    conn = reader(store)
    conn.execute("UPDATE memories_fts_data SET block = ? WHERE id = 1", (bytes([2, 0]),))
    assert totals(conn) == (2, 0.0)
    assert common_term(conn, "p", "kafka", 2, 10, 10) == {}
