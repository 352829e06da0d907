"""The embedded backend: memories in one SQLite file with an FTS5 index; recall in local_search.py.

One thread writes (turns in batches, turn_batcher.py), reader threads search, each with its own
connection: WAL lets a recall run while the writer commits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from memproxy_cli.memory.backend import Memory, Turn
from memproxy_cli.memory.fts_query import query_terms
from memproxy_cli.memory.local_schema import SCHEMA, rebuild_fts_if_outdated
from memproxy_cli.memory.local_search import LocalSearch, row_to_memory
from memproxy_cli.memory.redact import redact
from memproxy_cli.memory.turn_batcher import TurnBatcher
from memproxy_cli.memory.turn_text import labeled, unlabeled

T = TypeVar("T")
log = logging.getLogger("memproxy.memory")

READERS = 2  # searches in parallel (SQLite releases the GIL while it steps)
# How many of the newest matches recall ranks (local_search.py); read at each search.
TERM_MATCH_BUDGET = 400

_LIST_SQL = """
SELECT m.id, m.scope, m.text, m.created_at, m.metadata FROM memories AS m WHERE m.scope = ?
ORDER BY m.created_at DESC, m.rowid DESC LIMIT ? OFFSET ?
"""
# A turn stored again: the memory is kept once, newer, with a count of the repeats.
_DUPLICATE_SQL = (
    "SELECT rowid, id FROM memories WHERE scope = ? AND json_extract(metadata, '$.dedup') = ?"
)
_REFRESH_SQL = """
UPDATE memories SET created_at = max(created_at, ?), metadata = json_set(metadata, '$.repeats',
    coalesce(json_extract(metadata, '$.repeats'), 0) + 1) WHERE rowid = ?
"""
_EXPORT_SQL = """
SELECT m.id, m.scope, m.text, m.created_at, m.metadata
FROM memories AS m WHERE m.scope = ? ORDER BY m.created_at, m.rowid
"""


def _shown(memory: Memory) -> Memory:
    """A memory as people and models see it: its parts labeled (turn_text.py)."""
    memory.text = labeled(memory.text, memory.metadata.get("parts"))
    return memory


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
        self._search = LocalSearch(half_life_days)
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
            self._search.forget_kept()
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

    def search_sync(self, scope: str, query: str, k: int, now: float | None = None) -> list[Memory]:
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        conn = self._connection()
        now = time.time() if now is None else now
        # One read transaction: one snapshot (a window's calibration must see what bm25() saw)
        # and one lock instead of one per statement.
        conn.execute("BEGIN")
        try:
            found = self._search.search(conn, scope, terms, k, now, TERM_MATCH_BUDGET)
            return [_shown(m) for m in found]
        finally:
            conn.execute("ROLLBACK")  # it only read

    def add_sync(self, scope: str, turn: Turn) -> str:
        """Store a turn; one whose `dedup_key` the scope holds refreshes that memory instead."""
        created = turn.created_at if turn.created_at is not None else time.time()
        conn = self._connection()
        if turn.dedup_key:
            row = conn.execute(_DUPLICATE_SQL, (scope, turn.dedup_key)).fetchone()
            if row is not None:
                conn.execute(_REFRESH_SQL, (created, row[0]))
                return str(row[1])
        memory_id = secrets.token_hex(8)
        text, lengths = unlabeled(redact(turn.user), redact(turn.assistant), redact(turn.note))
        metadata: dict[str, Any] = {
            k: v
            for k, v in (
                ("model", turn.model),
                ("request_id", turn.request_id),
                ("client", turn.client),
                ("dedup", turn.dedup_key),
                ("chrome_chars", turn.chrome_chars),
            )
            if v
        }
        metadata["parts"] = lengths
        metadata.update(turn.metadata)
        conn.execute(
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
        return [_shown(row_to_memory(row)) for row in rows]

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
        rows = self._connection().execute(_EXPORT_SQL, (scope,))
        return [_shown(row_to_memory(row)) for row in rows]

    def scopes_sync(self) -> list[tuple[str, int]]:
        sql = "SELECT scope, count(*) FROM memories GROUP BY scope ORDER BY scope"
        return [(row[0], row[1]) for row in self._connection().execute(sql)]

    def close_sync(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        self._local = threading.local()
        self._search.close()
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
