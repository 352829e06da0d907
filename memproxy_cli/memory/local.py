"""The embedded backend: SQLite + FTS5 (BM25) blended with recency, one thread owns the connection.

Search restricts candidates with the full-text index first (the best `CANDIDATES` by BM25 within
the scope), then blends in recency in Python: score = (1 - w) * relevance + w * freshness, where
relevance is BM25 scaled to the best candidate (0..1] and freshness halves every half-life.
Terms that match a large share of the store (a `"use"*` in a 100k-memory project) would make
BM25 score tens of thousands of rows while adding little: terms are taken rarest first until
their matches would exceed `TERM_MATCH_BUDGET` (the rarest term is always kept), and only the
newest `TERM_MATCH_BUDGET` matches (by insertion order) are ranked, which recency would favour
anyway. Those matches and their BM25 scores are kept between recalls (match_window.py): a later
recall with the same terms scores only the turns stored since.
A query with nothing searchable left (empty, or only stop words) returns no memories: injecting
whatever is recent would be noise, not recall.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from memproxy_cli.memory.backend import Memory, Turn
from memproxy_cli.memory.fts_bm25 import calibrate, new_matches
from memproxy_cli.memory.fts_query import match_expression, query_terms, term_expression
from memproxy_cli.memory.local_schema import SCHEMA, rebuild_fts_if_outdated
from memproxy_cli.memory.match_window import Match, Window, WindowCache, new_window
from memproxy_cli.memory.redact import redact
from memproxy_cli.memory.turn_batcher import TurnBatcher
from memproxy_cli.memory.turn_text import format_turn

T = TypeVar("T")
log = logging.getLogger("memproxy.memory")

CANDIDATES = 50
READERS = 2  # searches in parallel (SQLite releases the GIL while it steps)
TERM_COUNT_TTL_S = 30.0
TERM_MATCH_BUDGET = 400
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
_COUNT_SQL = (
    "SELECT count(*) FROM (SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)"
)
RECENCY_WEIGHT = 0.3
_DAY = 86400.0


_LIST_SQL = """
SELECT m.id, m.scope, m.text, m.created_at, m.metadata FROM memories AS m WHERE m.scope = ?
ORDER BY m.created_at DESC, m.rowid DESC LIMIT ? OFFSET ?
"""
_EXPORT_SQL = """
SELECT m.id, m.scope, m.text, m.created_at, m.metadata
FROM memories AS m WHERE m.scope = ? ORDER BY m.created_at, m.rowid
"""


def _matches(conn: sqlite3.Connection, expression: str, from_rowid: int) -> list[Match]:
    """Matches from `from_rowid` on, scored by FTS5's bm25()."""
    return [Match(*row) for row in conn.execute(_MATCHES_SQL, (expression, from_rowid))]


def _row_to_memory(row: Sequence[Any], score: float = 0.0) -> Memory:
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
    best = -candidates[0].bm25 or 1.0
    scored = [
        (blend(-m.bm25 / best, m.created_at, now, half_life_days), -m.order) for m in candidates
    ]
    return heapq.nlargest(k, scored, key=itemgetter(0))


class LocalMemoryBackend:
    """Memories in one SQLite file (WAL): one thread writes, another searches.

    Searches have their own thread and connection so a recall never queues behind the stores
    of earlier turns; WAL lets that reader run while the writer commits.
    """

    name = "local"

    def __init__(
        self, path: Path, half_life_days: float = 30.0, store_linger_s: float = 0.0
    ) -> None:
        """`store_linger_s`: how long the writer lets turns gather after a write (turn_batcher.py);
        the daemon lingers, direct callers (the CLI, tests) get each write at once."""
        self.path = path
        self.half_life_days = half_life_days
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memproxy-memory")
        self._turns = TurnBatcher(self._executor, self._add_batch, store_linger_s)
        self._reader = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="memproxy-recall")
        self._term_counts: dict[str, tuple[float, int]] = {}
        self._windows = WindowCache()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self, reader: bool = False) -> sqlite3.Connection:
        """This thread's connection (each executor thread, and a CLI caller, has its own).

        The first connection that may write also brings an outdated text index up to date
        (never a reader: a recall has a time budget).
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            if not reader:
                self._rebuild_outdated_index(conn)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _rebuild_outdated_index(self, conn: sqlite3.Connection) -> None:
        started = time.monotonic()
        if rebuild_fts_if_outdated(conn):
            self._windows.clear()
            log.info(
                "memory: reindexed %s for faster recall in %.1f s",
                self.path,
                time.monotonic() - started,
            )

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        used: list[sqlite3.Connection] = []

        def call() -> T:
            used.append(self._connection(reader=True))
            return fn(*args)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, call)
        except asyncio.CancelledError:
            if used:  # stop the search of a caller that gave up (recall timeout)
                used[0].interrupt()
            raise

    def _selective_terms(self, terms: list[str]) -> tuple[list[str], int]:
        """The rarest terms whose matches fit the budget, and their match count (capped)."""
        counted = []
        for term in terms:
            hits = self._term_hits(term)
            if hits:
                counted.append((hits, term))
        counted.sort()
        chosen: list[str] = []
        total = 0
        for hits, term in counted:
            if chosen and total + hits > TERM_MATCH_BUDGET:
                break
            chosen.append(term)
            total += hits
        return chosen, total

    def _term_hits(self, term: str) -> int:
        """How many memories match a term (capped), remembered briefly: words recur across
        questions and their counts move slowly, so most recalls skip these queries."""
        now = time.monotonic()
        cached = self._term_counts.get(term)
        if cached is not None and now - cached[0] < TERM_COUNT_TTL_S:
            return cached[1]
        cap = TERM_MATCH_BUDGET + 1
        (hits,) = self._connection().execute(_COUNT_SQL, (term_expression(term), cap)).fetchone()
        if hits:  # never remember "no match": the next stored turn may bring the word
            if len(self._term_counts) >= 4096:
                self._term_counts.clear()
            self._term_counts[term] = (now, int(hits))
        return int(hits)

    def search_sync(self, scope: str, query: str, k: int, now: float | None = None) -> list[Memory]:
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        conn = self._connection()
        # One read transaction: one snapshot (a window's calibration must see what bm25() saw)
        # and one lock instead of one per statement.
        conn.execute("BEGIN")
        try:
            return self._search(conn, scope, terms, k, time.time() if now is None else now)
        finally:
            conn.execute("ROLLBACK")  # it only read

    def _search(
        self, conn: sqlite3.Connection, scope: str, terms: list[str], k: int, now: float
    ) -> list[Memory]:
        chosen, hits = self._selective_terms(terms)
        expression = match_expression(chosen)
        if expression is None:
            return []
        window = self._window(conn, expression, hits, one_term=len(chosen) == 1)
        candidates = window.best(scope, CANDIDATES)
        if not candidates:
            return []
        top = rank(candidates, now, self.half_life_days, k)
        ids = json.dumps([rowid for _, rowid in top])
        rows = {row[0]: row[1:] for row in conn.execute(_ROWS_SQL, (ids,))}
        return [_row_to_memory(rows[rowid], score) for score, rowid in top if rowid in rows]

    def _window(
        self, conn: sqlite3.Connection, expression: str, hits: int, one_term: bool
    ) -> Window:
        """The newest `TERM_MATCH_BUDGET` matches of `expression`, kept or topped up."""
        budget = TERM_MATCH_BUDGET
        row = conn.execute(_CHANGES_SQL).fetchone()
        changes = int(row[0]) if row else 0
        window = self._windows.get(expression, budget, changes)
        if window is not None:
            window = self._topped_up(conn, expression, window)
        if window is None:
            window = self._full_window(conn, expression, hits, one_term, changes)
        self._windows.put(expression, window)
        return window

    @staticmethod
    def _topped_up(conn: sqlite3.Connection, expression: str, window: Window) -> Window | None:
        """`window` with the matches stored since; None when it is time for a full query."""
        since = window.high_water + 1
        new = None
        if window.calibration is not None:
            new = new_matches(conn, expression, since, window.calibration)
        if new is None:
            new = _matches(conn, expression, since)
        topped = window.extended(new)
        return None if topped.worn else topped

    @staticmethod
    def _full_window(
        conn: sqlite3.Connection, expression: str, hits: int, one_term: bool, changes: int
    ) -> Window:
        budget = TERM_MATCH_BUDGET
        floor = 0
        if hits > budget:
            row = conn.execute(_FLOOR_SQL, (expression, budget - 1)).fetchone()
            floor = row[0] if row else 0
        matches = _matches(conn, expression, floor)
        calibration = calibrate(conn, expression, floor) if one_term and matches else None
        return new_window(matches, budget, changes, calibration)

    def add_sync(self, scope: str, turn: Turn) -> str:
        memory_id = secrets.token_hex(8)
        text = redact(format_turn(turn.user, turn.assistant))
        metadata = {k: v for k, v in (("model", turn.model), ("request_id", turn.request_id)) if v}
        metadata.update(turn.metadata)
        created = turn.created_at if turn.created_at is not None else time.time()
        self._connection().execute(
            "INSERT INTO memories (id, scope, text, created_at, metadata) VALUES (?, ?, ?, ?, ?)",
            (memory_id, scope, text, created, json.dumps(metadata)),
        )
        return memory_id

    def add_many_sync(self, scope: str, turns: Sequence[Turn]) -> int:
        """Bulk insert in one transaction (imports and benchmarks)."""
        return len(self._add_batch([(scope, turn) for turn in turns]))

    def _add_batch(self, turns: Sequence[tuple[str, Turn]]) -> list[str]:
        """Turns of any scopes in one transaction; their memory ids."""
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            ids = [self.add_sync(scope, turn) for scope, turn in turns]
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return ids

    def list_sync(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        rows = self._connection().execute(_LIST_SQL, (scope, limit, offset)).fetchall()
        return [_row_to_memory(row) for row in rows]

    def forget_sync(self, scope: str | None, memory_id: str) -> bool:
        """Delete one memory; with scope None, wherever it is."""
        if scope is None:
            cur = self._connection().execute("DELETE FROM memories WHERE id = ?", (memory_id,))
        else:
            cur = self._connection().execute(
                "DELETE FROM memories WHERE id = ? AND scope = ?", (memory_id, scope)
            )
        return cur.rowcount > 0

    def export_sync(self, scope: str) -> list[Memory]:
        return [_row_to_memory(row) for row in self._connection().execute(_EXPORT_SQL, (scope,))]

    def scopes_sync(self) -> list[tuple[str, int]]:
        sql = "SELECT scope, count(*) FROM memories GROUP BY scope ORDER BY scope"
        return [(row[0], row[1]) for row in self._connection().execute(sql)]

    def close_sync(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        self._local = threading.local()
        for conn in conns:
            conn.close()

    # -- the MemoryBackend protocol ---------------------------------------------------------

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        if k <= 0 or not query_terms(query):
            return []  # nothing to look up: not worth a trip to a reader thread
        return await self._read(self.search_sync, scope, query, k)

    async def add(self, scope: str, turn: Turn) -> str | None:
        return await self._turns.add(scope, turn)

    async def list(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        return await self._run(self.list_sync, scope, limit, offset)

    async def forget(self, scope: str, memory_id: str) -> bool:
        return await self._run(self.forget_sync, scope, memory_id)

    async def export(self, scope: str) -> Sequence[Memory]:
        return await self._run(self.export_sync, scope)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._reader.shutdown, True)  # let running searches finish
        await loop.run_in_executor(self._executor, self.close_sync)
        self._executor.shutdown(wait=False)
