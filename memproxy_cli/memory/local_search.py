"""Recall from the local store: FTS5 BM25 and vector search, fused dense-first.

Candidates are the best `CANDIDATES` of each list within the scope: BM25 over the query's terms
(prefixes; fts_bm25.py), and the nearest embedded memories of the scope to the query's embedding
(scope_vectors.py, compressed codes). Each candidate scores, with the exact cosine of its stored
float32 vector,

    cosine + LEXICAL_WEIGHT * coverage + FRESHNESS_WEIGHT * freshness

where coverage is the share of the query's terms the memory contains and freshness halves every
half-life. Plain reciprocal rank fusion lets BM25's list (noise on a paraphrased question) push
out the dense list's answer; coverage only helps memories that share the question's words.
A memory with no embedding yet (stored a moment ago, or waiting for the backfill of an upgraded
store) and every memory while the model loads stand in with their scaled BM25 for the cosine.

Newest wins: candidates whose statements are nearly the same (cosine >= `SAME_SUBJECT`, or the
same words) form one group, shown once as its newest member at the group's best score: an
update ("the staging DB moved to port 6543") replaces what it updates, and repeats collapse.
Memories stored with the same time (the facts drawn from one turn) are never updates of each
other, however near their statements.
A query with nothing searchable (empty, or only stop words) returns no memories.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memproxy_cli.memory.backend import Memory
from memproxy_cli.memory.compact import compact_text, parts
from memproxy_cli.memory.fts_bm25 import WORD as _WORD
from memproxy_cli.memory.fts_bm25 import common_term, ranked
from memproxy_cli.memory.fts_query import (
    MIN_PREFIX_LEN,
    match_expression,
    query_terms,
    term_expression,
)

if TYPE_CHECKING:
    from memproxy_cli.memory.embeddings import Vectors
    from memproxy_cli.memory.scope_vectors import ScopeVectors

CANDIDATES = 50
# A word found in most of a 100k-memory project (`"use"*`) would have BM25 score every memory
# (200 ms). Terms are taken rarest first while their matches fit `MATCH_BUDGET` (the rarest is
# always kept), and only the scope's newest `RANK_WINDOW` matches are ranked, which freshness
# favours anyway (fts_bm25.py: each ranked match costs about 1 us).
MATCH_BUDGET = 400
RANK_WINDOW = MATCH_BUDGET
TERM_COUNT_TTL_S = 30.0
_MAX_TERM_COUNTS = 4096
LEXICAL_WEIGHT = 0.25
FRESHNESS_WEIGHT = 0.1
SAME_SUBJECT = 0.6
MIN_COSINE = 0.25  # below it, a memory sharing no word with the question is not recalled
INT8_MARGIN = 0.05  # int8 cosines are within about 0.01 of the exact ones
_DAY = 86400.0

Row = tuple[Any, ...]  # id, scope, text, created_at, metadata (as in memories)

_COUNT_SQL = (
    "SELECT count(*) FROM (SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)"
)
_ROWS_SQL = """
SELECT m.rowid, m.id, m.scope, m.text, m.created_at, m.metadata, m.user_text, m.assistant_text,
    m.embedding
FROM json_each(?) AS j CROSS JOIN memories AS m ON m.rowid = j.value WHERE m.scope = ?
"""


def row_to_memory(row: Row, score: float = 0.0) -> Memory:
    """A memory from (id, scope, text, created_at, metadata)."""
    return Memory(
        id=row[0],
        scope=row[1],
        text=row[2],
        created_at=row[3],
        score=score,
        metadata=json.loads(row[4] or "{}"),
    )


def freshness(created_at: float, now: float, half_life_days: float) -> float:
    return math.pow(0.5, max(0.0, now - created_at) / _DAY / half_life_days)


def coverage(terms: Sequence[str], text: str) -> float:
    """The share of `terms` found in `text` (prefix match, as the full-text query does): a
    term counts where it starts a word (after no letter or digit) and, when shorter than
    `MIN_PREFIX_LEN`, also ends it. A word is a run of letters and digits (`_WORD`)."""
    if not terms:
        return 0.0
    lowered = text.lower()
    found = 0
    for term in terms:
        at = lowered.find(term)
        while at >= 0:
            end = at + len(term)
            if (at == 0 or not lowered[at - 1].isalnum()) and (
                len(term) >= MIN_PREFIX_LEN or end == len(lowered) or not lowered[end].isalnum()
            ):
                found += 1
                break
            at = lowered.find(term, at + 1)
    return found / len(terms)


@dataclass(slots=True)
class _Candidate:
    rowid: int
    row: Row
    user: str
    assistant: str
    score: float


# ASCII letters lowered and digits kept, every other ASCII character a space: what `_WORD` does
# to ASCII text, at a third of its cost (only ASCII text is translated: the rest is unused).
_ASCII_WORDS = bytes(ord(chr(c).lower()) if chr(c).isalnum() else 32 for c in range(128))
_ASCII_WORDS += bytes(128)


def _statement_key(user: str) -> str:
    """The statement's words, lowercased, one space apart."""
    if user.isascii():
        return " ".join(user.encode().translate(_ASCII_WORDS).decode().split())
    return " ".join(_WORD.findall(user.lower()))


def _near_pairs(order: list[_Candidate], vectors: dict[int, Any]) -> dict[int, list[int]]:
    """For each position i in `order`, the positions j < i (ascending) whose vectors have a
    cosine of at least `SAME_SUBJECT` with its own and another time (one matrix product; a
    missing vector is never close)."""
    if not vectors or not order:
        return {}
    import numpy as np  # only when there are vectors: the daemon, never a CLI command

    dim = len(next(iter(vectors.values())))
    stacked = np.stack([vectors.get(c.rowid, np.zeros(dim, dtype=np.float32)) for c in order])
    times = np.array([c.row[3] for c in order])
    close = (stacked @ stacked.T >= SAME_SUBJECT) & (times[:, None] != times[None, :])
    later, earlier = np.nonzero(np.tril(close, -1))  # row by row, each row ascending
    near: dict[int, list[int]] = {}
    for i, j in zip(later.tolist(), earlier.tolist(), strict=True):
        near.setdefault(i, []).append(j)
    return near


def exact_cosines(rows: list[Row], query: Vectors, dense: dict[int, float]) -> dict[int, Any]:
    """The stored float32 vector of each row that has one (`row[0]` rowid, `row[8]` the
    embedding), and its exact cosine with `query` into `dense` (the index's is approximate)."""
    import numpy as np  # only with a query vector: the daemon, never a CLI command

    stored = [row for row in rows if row[8] is not None]
    if not stored:
        return {}
    matrix = np.frombuffer(b"".join(row[8] for row in stored), dtype=np.float32)
    matrix = matrix.reshape(len(stored), -1)
    rowids = [int(row[0]) for row in stored]
    dense.update(zip(rowids, (matrix @ query).tolist(), strict=True))
    return dict(zip(rowids, matrix, strict=True))


def worth_reading(dense: dict[int, float], lexical: dict[int, float]) -> dict[int, float]:
    """The vector candidates whose rows are read: without a word of the question a memory
    needs `MIN_COSINE`, so those whose int8 cosine is clearly below it are left out."""
    floor = MIN_COSINE - INT8_MARGIN
    return {rowid: cos for rowid, cos in dense.items() if cos >= floor or rowid in lexical}


def newest_wins(candidates: list[_Candidate], vectors: dict[int, Any]) -> list[_Candidate]:
    """One candidate per subject: the newest, at the best score of its group, best first.

    Each candidate, newest first, joins the first group whose newest member has the same
    statement words or a cosine of at least `SAME_SUBJECT` with it (a candidate without a
    vector joins by its words only), else starts a group."""
    by_age = sorted(candidates, key=lambda c: (c.row[3], c.rowid), reverse=True)
    # Facts drawn from one turn share its time: they never update one another.
    near = _near_pairs(by_age, vectors)
    heads: list[int] = []  # positions in by_age of each group's newest member
    group_of_head: dict[int, int] = {}
    group_of_key: dict[str, int] = {}  # the first group whose newest member has these words
    for i, cand in enumerate(by_age):
        key = _statement_key(cand.user)
        joined = group_of_key.get(key)
        for j in near.get(i, ()):  # ascending: the first head found is the oldest group
            group = group_of_head.get(j)
            if group is not None:
                if joined is None or group < joined:
                    joined = group
                break
        if joined is None:
            group_of_key.setdefault(key, len(heads))
            group_of_head[i] = len(heads)
            heads.append(i)
        else:
            head = by_age[heads[joined]]
            head.score = max(head.score, cand.score)
    return sorted((by_age[g] for g in heads), key=lambda c: c.score, reverse=True)


class LocalSearch:
    """Ranks the candidates of one recall; safe to use from several threads."""

    def __init__(self, half_life_days: float) -> None:
        self.half_life_days = half_life_days
        self._term_counts: dict[str, tuple[float, int]] = {}

    def _term_hits(self, conn: sqlite3.Connection, term: str) -> int:
        """How many memories match `term` (capped), remembered briefly: counts move slowly."""
        now = time.monotonic()
        cached = self._term_counts.get(term)
        if cached is not None and now - cached[0] < TERM_COUNT_TTL_S:
            return cached[1]
        (hits,) = conn.execute(_COUNT_SQL, (term_expression(term), MATCH_BUDGET + 1)).fetchone()
        if hits:  # never remember "no match": the next stored turn may bring the word
            if len(self._term_counts) >= _MAX_TERM_COUNTS:
                self._term_counts.clear()
            self._term_counts[term] = (now, int(hits))
        return int(hits)

    def _lexical(self, conn: sqlite3.Connection, scope: str, terms: list[str]) -> dict[int, float]:
        """The best `CANDIDATES` by BM25 among the scope's newest `RANK_WINDOW` matches of the
        rarest terms: FTS5's bm25() when their matches fit `MATCH_BUDGET`, else (a single
        term) BM25 by length over its newest matches (fts_bm25.py)."""
        counted = sorted((self._term_hits(conn, t), t) for t in terms)
        chosen: list[tuple[str, int]] = []
        total = 0
        for hits, term in counted:
            if not hits or (chosen and total + hits > MATCH_BUDGET):
                continue
            chosen.append((term, hits))
            total += hits
        if len(chosen) == 1 and chosen[0][1] > MATCH_BUDGET:  # bm25() would read all its matches
            term, hits = chosen[0]
            return common_term(conn, scope, term, hits, RANK_WINDOW, CANDIDATES)
        expression = match_expression([term for term, _ in chosen])
        if expression is None:
            return {}
        return ranked(conn, scope, expression, RANK_WINDOW, CANDIDATES)

    def search(
        self,
        conn: sqlite3.Connection,
        scope: str,
        query: str,
        k: int,
        now: float,
        index: ScopeVectors | None = None,
        query_vector: Vectors | None = None,
    ) -> list[Memory]:
        """The `k` best memories of `scope`; lexical only without `index` and `query_vector`
        (or while the scope's vectors load)."""
        terms = query_terms(query)
        expression = match_expression(terms)
        if expression is None or k <= 0:
            return []
        lexical = self._lexical(conn, scope, terms)
        dense: dict[int, float] = {}
        if index is not None and query_vector is not None:
            dense = worth_reading(index.top(scope, query_vector, CANDIDATES) or {}, lexical)
        wanted = set(lexical) | set(dense)
        if not wanted:
            return []
        rows = conn.execute(_ROWS_SQL, (json.dumps(sorted(wanted)), scope)).fetchall()
        vectors: dict[int, Any] = {}
        if query_vector is not None:
            vectors = exact_cosines(rows, query_vector, dense)
        return rank(rows, terms, lexical, dense, vectors, now, self.half_life_days, k)


def rank(
    rows: Sequence[Row],
    terms: Sequence[str],
    lexical: dict[int, float],
    dense: dict[int, float],
    vectors: dict[int, Any],
    now: float,
    half_life_days: float,
    k: int,
) -> list[Memory]:
    """The `k` best of the candidates `rows` (key, id, scope, text, created_at, metadata,
    user_text, assistant_text): fused, newest wins. `lexical`: a full-text score per key,
    lower is better (FTS5's negative BM25; any backend's text rank negated); `dense`: the cosine
    per key; `vectors`: the candidates' embeddings, for grouping."""
    best_bm25 = -min(lexical.values(), default=-1.0) or 1.0
    candidates = []
    for row in rows:
        rowid = int(row[0])
        user, assistant = parts(row[3], row[6], row[7])
        relevance = dense.get(rowid)
        if rowid not in lexical and (relevance is None or relevance < MIN_COSINE):
            continue
        if relevance is None:
            relevance = 0.5 * (-lexical.get(rowid, 0.0) / best_bm25)
        score = (
            relevance
            + LEXICAL_WEIGHT * coverage(terms, row[3])
            + FRESHNESS_WEIGHT * freshness(row[4], now, half_life_days)
        )
        candidates.append(_Candidate(rowid, tuple(row[1:6]), user, assistant, score))
    chosen = newest_wins(candidates, vectors)[:k]
    return [
        Memory(
            id=c.row[0],
            scope=c.row[1],
            text=compact_text(c.user, c.assistant),
            created_at=c.row[3],
            score=c.score,
            metadata=_metadata(c.row[4]),
        )
        for c in chosen
    ]


def _metadata(value: Any) -> dict[str, Any]:
    """Stored metadata: JSON text (SQLite) or already a dict (PostgreSQL's jsonb)."""
    if isinstance(value, dict):
        return value
    loaded: dict[str, Any] = json.loads(value or "{}")
    return loaded
