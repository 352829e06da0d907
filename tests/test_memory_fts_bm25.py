"""bm25() of a one-term search recomputed from term counts and lengths equals FTS5's own."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from memproxy_cli.memory.fts_bm25 import calibrate, new_matches, varint
from memproxy_cli.memory.local_schema import SCHEMA
from memproxy_cli.memory.match_window import rowid

WORDS = ["the", "cache", "is", "warm", "redis", "keeps", "hot", "rows", "billing", "api"]


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "memory.sqlite3", isolation_level=None)
    db.executescript(SCHEMA)
    rng = random.Random(3)
    for i in range(300):
        words = rng.choices(WORDS, k=rng.randint(3, 40))
        if i % 7 == 0:
            words.append("\x1d")  # the highlight mark in the text itself must not count
        db.execute(
            "INSERT INTO memories (id, scope, text, created_at) VALUES (?, 'p', ?, ?)",
            (f"m{i}", " ".join(words), float(i)),
        )
    return db


def fts_scores(conn: sqlite3.Connection, expression: str) -> dict[int, float]:
    sql = "SELECT rowid, bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ?"
    return dict(conn.execute(sql, (expression,)).fetchall())


@pytest.mark.parametrize("expression", ['"cache"*', '"redis"', '"keeps"*', '"rows"*'])
def test_recomputed_scores_equal_bm25(conn: sqlite3.Connection, expression: str) -> None:
    expected = fts_scores(conn, expression)
    assert len(expected) > 50
    calibration = calibrate(conn, expression, 0, expected)
    assert calibration is not None
    found = new_matches(conn, expression, 0, calibration)
    assert found is not None
    assert {rowid(m) for m in found} == set(expected)
    for match in found:
        assert match[0] == pytest.approx(expected[rowid(match)], rel=1e-9)


def test_no_calibration_without_matches(conn: sqlite3.Connection) -> None:
    assert calibrate(conn, '"kafka"*', 0, {}) is None


def test_no_calibration_when_the_formula_disagrees(conn: sqlite3.Connection) -> None:
    scores = fts_scores(conn, '"redis"')
    assert calibrate(conn, '"redis"', 0, scores) is not None
    newest = max(scores)
    scores[newest] *= 1.01  # bm25() said otherwise for one of the sampled matches
    assert calibrate(conn, '"redis"', 0, scores) is None


def test_varint() -> None:
    assert varint(bytes([0x05])) == (5, 1)
    assert varint(bytes([0x81, 0x00])) == (128, 2)
    assert varint(bytes([0xFF] * 8 + [0x01])) == ((2**56 - 1) << 8 | 1, 9)
