"""BM25 over a scope's newest full-text matches, with bounded work however common the words.

FTS5's bm25() weighs each term by the number of memories that hold it, which it counts by
reading every match of the term (its whole doclist) once per query, however few matches are
ranked: about 0.5 ms at 100k memories for a word held by 8% of them, plus about 1 us for each
ranked match. So bm25() ranks only terms whose matches fit the caller's budget (`ranked`: the
doclists it reads are as short as that), and a single term with more matches is ranked without
it (`common_term`). With one term, BM25 (k1 = 1.2, b = 0.75) orders the matches by their
length alone (shortest first; the term's weight scales every score alike) and a memory's
length in tokens is kept with its scope in an index by rowid (`words`, local_schema.m005; the
text index's `docsize` table for a row stored before), so the term's newest matches in the
scope are ordered by it and only the best are scored:
`-idf * (k1 + 1) / (1 + k1 * (1 - b + b * length / average length))`, with the store's size
and average length from the index's totals (one small record) and idf from the caller's count.
Unlike bm25(), it counts the term once per memory: an answer that echoes the question's word
ranks no higher for it.
"""

from __future__ import annotations

import math
import re
import sqlite3

from memproxy_cli.memory.fts_query import term_expression

K1 = 1.2
B = 0.75
_MIN_IDF = 1e-6  # as FTS5's bm25(): a term held by more than half the store still counts a little
# FTS5's totals: the number of rows and of tokens per column, varints, in the record with id 1.
_TOTALS_SQL = "SELECT block FROM memories_fts_data WHERE id = 1"

# CROSS JOIN keeps the full-text index as the outer loop (never a scan of the scope's rows); the
# inner query walks the matches newest first and stops after the window. Each match's scope is
# read from `memories_scope_of` (local_schema.m005), not from its row.
_RANKED_SQL = """
SELECT rowid, score FROM (
    SELECT memories_fts.rowid AS rowid, bm25(memories_fts) AS score
    FROM memories_fts CROSS JOIN memories AS m INDEXED BY memories_scope_of
        ON m.rowid = memories_fts.rowid
    WHERE memories_fts MATCH ? AND m.scope = ? ORDER BY memories_fts.rowid DESC LIMIT ?
) ORDER BY score LIMIT ?
"""
# A memory's length: `words` (m005), or for a row stored before, the varint of tokens in the
# index's `docsize` (one column), decoded for up to 3 bytes (instr(_BYTES, one byte) is its
# value; a longer one, or none at all, as for a row whose docsize record is missing, is taken
# as 2**21 tokens: ranked last, never a NULL that would sort first and fail the scoring).
_SHORTEST_SQL = """
SELECT rowid, words FROM (
    SELECT memories_fts.rowid AS rowid, coalesce(m.words, (
        SELECT CASE length(d.sz)
            WHEN 1 THEN instr(:bytes, substr(d.sz, 1, 1))
            WHEN 2 THEN (instr(:bytes, substr(d.sz, 1, 1)) - 128) * 128
                + instr(:bytes, substr(d.sz, 2, 1))
            WHEN 3 THEN ((instr(:bytes, substr(d.sz, 1, 1)) - 128) * 128
                + instr(:bytes, substr(d.sz, 2, 1)) - 128) * 128 + instr(:bytes, substr(d.sz, 3, 1))
            ELSE 2097152 END
        FROM memories_fts_docsize AS d WHERE d.id = m.rowid), 2097152) AS words
    FROM memories_fts CROSS JOIN memories AS m INDEXED BY memories_scope_of
        ON m.rowid = memories_fts.rowid
    WHERE memories_fts MATCH :match AND m.scope = :scope
    ORDER BY memories_fts.rowid DESC LIMIT :window
) ORDER BY words, rowid DESC LIMIT :limit
"""
# Byte i - 1 is i.
_BYTES = bytes(range(1, 256))
# ASCII letters and digits kept, every other ASCII character a space (what `WORD` finds).
_ASCII_TOKENS = bytes(c if chr(c).isalnum() else 32 for c in range(128)) + bytes(128)
WORD = re.compile(r"[^\W_]+", re.UNICODE)  # a word: a run of letters and digits


def token_count(text: str) -> int:
    """How many tokens the text index makes of `text`: runs of letters and digits."""
    if text.isascii():
        return len(text.encode().translate(_ASCII_TOKENS).split())
    return len(WORD.findall(text))


def varints(data: bytes) -> list[int]:
    """SQLite's big-endian varints (7 bits a byte, the high bit set on all but the last; a
    ninth byte gives 8 bits), as FTS5 writes them."""
    values: list[int] = []
    value = length = 0
    for byte in data:
        length += 1
        if length == 9:
            values.append((value << 8) | byte)
            value = length = 0
        elif byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
        else:
            values.append((value << 7) | byte)
            value = length = 0
    return values


def totals(conn: sqlite3.Connection) -> tuple[int, float]:
    """The number of memories the index holds (every scope) and their average length in
    tokens; (0, 0.0) for an empty index."""
    row = conn.execute(_TOTALS_SQL).fetchone()
    counts = varints(row[0]) if row is not None and row[0] else []
    if len(counts) < 2 or counts[0] <= 0:
        return 0, 0.0
    return counts[0], counts[1] / counts[0]


def idf(rows: int, holding: int) -> float:
    """FTS5's inverse document frequency of a term held by `holding` of `rows` memories."""
    return max(math.log((rows - holding + 0.5) / (holding + 0.5)), _MIN_IDF)


def ranked(
    conn: sqlite3.Connection, scope: str, expression: str, window: int, limit: int
) -> dict[int, float]:
    """The best `limit` of `scope`'s newest `window` matches of `expression` by FTS5's bm25()
    (rowid -> score, lower is better): for terms with few matches, which it reads all of."""
    return dict(conn.execute(_RANKED_SQL, (expression, scope, window, limit)))


def common_term(
    conn: sqlite3.Connection, scope: str, term: str, holding: int, window: int, limit: int
) -> dict[int, float]:
    """The best `limit` of `scope`'s newest `window` matches of `term`, held by about
    `holding` memories of the store, by BM25 (rowid -> score, lower is better), without
    reading the term's other matches."""
    rows, average = totals(conn)
    if rows <= 0 or average <= 0.0:  # an empty index (or unreadable totals): nothing to rank
        return {}
    weight = idf(rows, min(holding, rows)) * (K1 + 1.0)
    params = {
        "match": term_expression(term),
        "scope": scope,
        "window": window,
        "limit": limit,
        "bytes": _BYTES,
    }
    scores: dict[int, float] = {}
    for rowid, length in conn.execute(_SHORTEST_SQL, params):
        scores[int(rowid)] = -weight / (1.0 + K1 * (1.0 - B + B * length / average))
    return scores
