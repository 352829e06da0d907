"""Recall from the local store: FTS5 (BM25) over the newest matches, blended with recency.

Search restricts candidates with the full-text index first (the best `CANDIDATES` by BM25 within
the scope), then blends in recency in Python: score = (1 - w) * relevance + w * freshness, where
relevance is BM25 scaled to the best candidate (0..1] and freshness halves every half-life.
Terms that match a large share of the store (a `"use"*` in a 100k-memory project) would make
BM25 score tens of thousands of rows while adding little: terms are taken rarest first until
their matches would exceed the budget (the rarest term is always kept), and only the newest
`budget` matches (by insertion order) are ranked, which recency would favour anyway. Those
matches and their BM25 scores are kept between recalls (match_window.py): a later recall with
the same terms scores only the turns stored since (recent_rows.py, fts_bm25.py).
A query with nothing searchable left (empty, or only stop words) returns no memories: injecting
whatever is recent would be noise, not recall.
"""

from __future__ import annotations

import heapq
import json
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from operator import itemgetter

from memproxy_cli.memory.backend import Memory
from memproxy_cli.memory.fts_bm25 import CALIBRATION_ROWS, calibrate, new_matches
from memproxy_cli.memory.fts_query import match_expression, term_expression
from memproxy_cli.memory.match_window import (
    BM25,
    CREATED_AT,
    Match,
    Window,
    WindowCache,
    new_window,
    rowid,
)
from memproxy_cli.memory.recent_rows import RecentRows, Row

CANDIDATES = 50
TERM_COUNT_TTL_S = 30.0
RECENCY_WEIGHT = 0.3
_DAY = 86400.0
_MAX_TERM_COUNTS = 4096

_COUNT_SQL = (
    "SELECT count(*) FROM (SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)"
)
_FLOOR_SQL = (
    "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT 1 OFFSET ?"
)
# CROSS JOIN keeps the full-text index as the outer loop (never a scan of the scope's rows).
_MATCHES_SQL = """
SELECT bm25(memories_fts), -memories_fts.rowid, m.scope, m.created_at
FROM memories_fts CROSS JOIN memories AS m ON m.rowid = memories_fts.rowid
WHERE memories_fts MATCH ? AND memories_fts.rowid >= ? ORDER BY memories_fts.rowid
"""
_ROWS_SQL = """
SELECT rowid, id, scope, text, created_at, metadata FROM memories
WHERE rowid IN (SELECT value FROM json_each(?))
"""
_CHANGES_SQL = "SELECT changes FROM memories_version"


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


def blend(relevance: float, created_at: float, now: float, half_life_days: float) -> float:
    """Relevance (0..1) blended with freshness that halves every `half_life_days`."""
    age_days = max(0.0, now - created_at) / _DAY
    freshness = math.pow(0.5, age_days / half_life_days)
    return (1.0 - RECENCY_WEIGHT) * relevance + RECENCY_WEIGHT * freshness


def rank(
    candidates: Sequence[Match], now: float, half_life_days: float, k: int
) -> list[tuple[float, int]]:
    """The `k` best (score, rowid) of `candidates` (best BM25 first), blended with freshness."""
    best = -candidates[0][BM25] or 1.0
    scored = [
        (blend(-m[BM25] / best, m[CREATED_AT], now, half_life_days), rowid(m)) for m in candidates
    ]
    return heapq.nlargest(k, scored, key=itemgetter(0))


def _matches(conn: sqlite3.Connection, expression: str, from_rowid: int) -> list[Match]:
    """Matches from `from_rowid` on, scored by FTS5's bm25()."""
    return conn.execute(_MATCHES_SQL, (expression, from_rowid)).fetchall()


class LocalSearch:
    """What recall keeps between searches: term counts, match windows, each reader's copy of
    recent rows. Safe to use from several threads, each with its own connection."""

    def __init__(self, half_life_days: float) -> None:
        self.half_life_days = half_life_days
        self._term_counts: dict[str, tuple[float, int]] = {}
        self._windows = WindowCache()
        self._local = threading.local()
        self._copies: list[RecentRows] = []
        self._lock = threading.Lock()

    def search(
        self,
        conn: sqlite3.Connection,
        scope: str,
        terms: list[str],
        k: int,
        now: float,
        budget: int,
    ) -> list[Memory]:
        """The `k` best memories of `scope` for `terms`. Run it in one read transaction."""
        chosen, hits = self._selective_terms(conn, terms, budget)
        expression = match_expression(chosen)
        if expression is None:
            return []
        recent = self._recent_rows()
        window = self._window(conn, recent, expression, hits, len(chosen) == 1, budget)
        candidates = window.best(scope, CANDIDATES)
        if not candidates:
            return []
        top = rank(candidates, now, self.half_life_days, k)
        rows = {rowid: recent.rows[rowid] for _, rowid in top if rowid in recent.rows}
        missing = [rowid for _, rowid in top if rowid not in rows]
        if missing:
            found = conn.execute(_ROWS_SQL, (json.dumps(missing),))
            rows.update((row[0], row[1:]) for row in found)
        return [row_to_memory(rows[rowid], score) for score, rowid in top if rowid in rows]

    def forget_kept(self) -> None:
        """Drop every kept window (the index was rebuilt)."""
        self._windows.clear()

    def close(self) -> None:
        with self._lock:
            copies, self._copies = self._copies, []
        self._local = threading.local()
        for copy in copies:
            copy.close()

    # -- terms ------------------------------------------------------------------------------

    def _selective_terms(
        self, conn: sqlite3.Connection, terms: list[str], budget: int
    ) -> tuple[list[str], int]:
        """The rarest terms whose matches fit the budget, and their match count (capped)."""
        counted = []
        for term in terms:
            hits = self._term_hits(conn, term, budget)
            if hits:
                counted.append((hits, term))
        counted.sort()
        chosen: list[str] = []
        total = 0
        for hits, term in counted:
            if chosen and total + hits > budget:
                break
            chosen.append(term)
            total += hits
        return chosen, total

    def _term_hits(self, conn: sqlite3.Connection, term: str, budget: int) -> int:
        """How many memories match a term (capped), remembered briefly: words recur across
        questions and their counts move slowly, so most recalls skip these queries."""
        now = time.monotonic()
        cached = self._term_counts.get(term)
        if cached is not None and now - cached[0] < TERM_COUNT_TTL_S:
            return cached[1]
        (hits,) = conn.execute(_COUNT_SQL, (term_expression(term), budget + 1)).fetchone()
        if hits:  # never remember "no match": the next stored turn may bring the word
            if len(self._term_counts) >= _MAX_TERM_COUNTS:
                self._term_counts.clear()
            self._term_counts[term] = (now, int(hits))
        return int(hits)

    # -- windows ----------------------------------------------------------------------------

    def _recent_rows(self) -> RecentRows:
        recent: RecentRows | None = getattr(self._local, "recent", None)
        if recent is None:
            recent = self._local.recent = RecentRows()
            with self._lock:
                self._copies.append(recent)
        return recent

    def _window(
        self,
        conn: sqlite3.Connection,
        recent: RecentRows,
        expression: str,
        hits: int,
        one_term: bool,
        budget: int,
    ) -> Window:
        """The newest `budget` matches of `expression`, kept and topped up, or queried."""
        row = conn.execute(_CHANGES_SQL).fetchone()
        changes = int(row[0]) if row else 0
        recent.refresh(conn, changes)
        window = self._windows.get(expression, budget, changes)
        if window is not None:
            window = _topped_up(conn, recent, expression, window)
        if window is None:
            window = _full_window(conn, expression, hits, one_term, changes, budget, recent.last)
        self._windows.put(expression, window)
        return window


def _topped_up(
    conn: sqlite3.Connection, recent: RecentRows, expression: str, window: Window
) -> Window | None:
    """`window` with the matches stored since it was last used; None when it is time for a
    full query (a quarter of it was appended since)."""
    after = window.checked_to
    new: list[Match] | None = None
    calibration = window.calibration
    if recent.last <= after:
        new = []  # nothing stored since
    elif calibration is not None and recent.covers(after):
        new = recent.matches(expression, after, calibration)
    if new is None and calibration is not None:
        new = new_matches(conn, expression, after + 1, calibration)
    if new is None:
        new = _matches(conn, expression, after + 1)
    topped = window.extended(new, recent.last)
    return None if topped.worn else topped


def _full_window(
    conn: sqlite3.Connection,
    expression: str,
    hits: int,
    one_term: bool,
    changes: int,
    budget: int,
    last: int,
) -> Window:
    floor = 0
    if hits > budget:
        row = conn.execute(_FLOOR_SQL, (expression, budget - 1)).fetchone()
        floor = row[0] if row else 0
    matches = _matches(conn, expression, floor)
    calibration = None
    if one_term and matches:
        newest = {rowid(m): m[BM25] for m in matches[-CALIBRATION_ROWS:]}
        calibration = calibrate(conn, expression, floor, newest)
    return new_window(matches, budget, changes, last, calibration)
