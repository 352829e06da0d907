"""FTS5's bm25() of a one-term search, recomputed from a match's term count and length.

A kept match window (match_window.py) scores the turns stored after it was built. bm25() would
first count every match of the term in the whole store (for its IDF), which for a common term
costs more than all the rest of a recall. For a search of one term FTS5's score is

    -idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl)),   k1 = 1.2, b = 0.75

where tf is how often the term occurs in the memory and length its size in tokens. A window
keeps the idf and avgdl of its full query, so every score in it shares them; the term count of a
new match comes from highlight() and its length from the index's docsize table. The calibration
checks the formula against bm25() itself on the newest matches of the full query (in the same
read transaction): if they disagree, the window keeps using bm25() for new matches.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from memproxy_cli.memory.match_window import Match

K1 = 1.2
B = 0.75
MARK = "\x1d"  # highlight() puts it before each occurrence; subtract those already in the text
CALIBRATION_ROWS = 4
TOLERANCE = 1e-9

_AVERAGES_SQL = "SELECT block FROM memories_fts_data WHERE id = 1"
_SAMPLE_SQL = """
SELECT memories_fts.rowid, highlight(memories_fts, 0, char(29), ''), m.text, d.sz
FROM memories_fts CROSS JOIN memories AS m ON m.rowid = memories_fts.rowid
CROSS JOIN memories_fts_docsize AS d ON d.id = memories_fts.rowid
WHERE memories_fts MATCH ? AND memories_fts.rowid >= ?
ORDER BY memories_fts.rowid DESC LIMIT ?
"""
_NEW_MATCHES_SQL = """
SELECT -memories_fts.rowid, m.scope, m.created_at,
    highlight(memories_fts, 0, char(29), ''), m.text, d.sz
FROM memories_fts CROSS JOIN memories AS m ON m.rowid = memories_fts.rowid
CROSS JOIN memories_fts_docsize AS d ON d.id = memories_fts.rowid
WHERE memories_fts MATCH ? AND memories_fts.rowid >= ? ORDER BY memories_fts.rowid
"""


@dataclass(frozen=True, slots=True)
class Calibration:
    idf: float
    avgdl: float

    def score(self, tf: int, length: int) -> float:
        """bm25() of a match: lower is better, as FTS5 returns it."""
        return -1.0 * (
            self.idf * ((tf * (K1 + 1.0)) / (tf + K1 * (1 - B + B * length / self.avgdl)))
        )


def varint(blob: bytes, at: int = 0) -> tuple[int, int]:
    """An SQLite varint at `at`: (value, offset after it)."""
    value = 0
    for i in range(8):
        byte = blob[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | blob[at + 8], at + 9


def term_count(highlighted: str, text: str) -> int:
    return highlighted.count(MARK) - text.count(MARK)


def average_length(conn: sqlite3.Connection) -> float | None:
    """Tokens per memory over the whole index (FTS5's averages record: rows, then tokens)."""
    row = conn.execute(_AVERAGES_SQL).fetchone()
    if row is None or not row[0]:
        return None
    rows, at = varint(row[0])
    tokens, _ = varint(row[0], at)
    return tokens / rows if rows else None


def calibrate(
    conn: sqlite3.Connection, expression: str, floor: int, scores: dict[int, float]
) -> Calibration | None:
    """The idf and avgdl that bm25() used for `expression`, checked against its `scores` (by
    rowid, from the window's full query) on the newest matches; None when they cannot be
    trusted. Run it in the transaction of that full query, so both see the same store."""
    avgdl = average_length(conn)
    if not avgdl:
        return None
    samples = conn.execute(_SAMPLE_SQL, (expression, floor, CALIBRATION_ROWS)).fetchall()
    if not samples:
        return None
    calibration: Calibration | None = None
    for rowid, highlighted, text, size in samples:
        tf, length = term_count(highlighted, text), varint(size)[0]
        bm25 = scores.get(rowid, 0.0)
        if tf <= 0 or bm25 >= 0:
            return None
        if calibration is None:  # the idf that makes the newest match's score come out right
            calibration = Calibration(bm25 / Calibration(1.0, avgdl).score(tf, length), avgdl)
        if abs(calibration.score(tf, length) - bm25) > TOLERANCE * abs(bm25):
            return None
    return calibration


def new_matches(
    conn: sqlite3.Connection, expression: str, from_rowid: int, calibration: Calibration
) -> list[Match] | None:
    """Matches from `from_rowid` on, scored with `calibration`; None if one cannot be."""
    found = []
    for order, scope, created_at, highlighted, text, size in conn.execute(
        _NEW_MATCHES_SQL, (expression, from_rowid)
    ):
        tf = term_count(highlighted, text)
        if tf <= 0 or not size:
            return None
        found.append((calibration.score(tf, varint(size)[0]), order, scope, created_at))
    return found
