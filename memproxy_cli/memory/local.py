"""The embedded backend: memories in one SQLite file with an FTS5 index; recall in local_search.py.

One thread writes (turns in batches, turn_batcher.py), reader threads search, each with its own
connection: WAL lets a recall run while the writer commits. With `embed` (the daemon), an
embedder thread loads the model in the background, then embeds every stored turn that has no
vector yet (new turns and, once, an upgraded store's) and hands the vectors to the writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from memproxy_cli.memory.backend import Memory, Turn
from memproxy_cli.memory.fts_bm25 import token_count
from memproxy_cli.memory.fts_query import query_terms
from memproxy_cli.memory.local_schema import CHANGES_SQL, migrate, rebuild_fts_if_outdated
from memproxy_cli.memory.local_search import LocalSearch, row_to_memory
from memproxy_cli.memory.stored_turn import stored_turn
from memproxy_cli.memory.turn_batcher import TurnBatcher
from memproxy_cli.memory.turn_text import labeled

if TYPE_CHECKING:
    from memproxy_cli.memory.embeddings import MiniLM, Vectors
    from memproxy_cli.memory.scope_vectors import ScopeVectors

T = TypeVar("T")
log = logging.getLogger("memproxy.memory")

READERS = 2  # searches in parallel (SQLite releases the GIL while it steps)
READER_CACHE_KIB = 4096
EMBED_BATCH = 32
QUERY_VECTORS_KEPT = 256
LOAD_CHUNK = 1024  # vectors read at a time when a scope's codes load

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
_INSERT_SQL = """
INSERT INTO memories
    (id, scope, text, created_at, metadata, user_text, assistant_text, client, note, words)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# The facts drawn from a turn name it (memory/extract.py); forgetting the turn forgets them.
_FORGET_FACTS_SQL = "DELETE FROM memories WHERE json_extract(metadata, '$.fact_of') = ?"
_UNEMBEDDED_SQL = """
SELECT rowid, scope, text, user_text, assistant_text FROM memories
WHERE embedding IS NULL AND rowid > ? ORDER BY rowid LIMIT ?
"""


def _shown(memory: Memory) -> Memory:
    """A memory as people and models see it: its parts labeled (turn_text.py)."""
    memory.text = labeled(memory.text, memory.metadata.get("parts"))
    return memory


class LocalMemoryBackend:
    """Memories in one SQLite file (WAL): one thread writes, reader threads search."""

    name = "local"

    def __init__(
        self,
        path: Path,
        half_life_days: float = 30.0,
        store_linger_s: float = 0.0,
        embed: bool = False,
    ) -> None:
        """`store_linger_s`: how long the writer lets turns gather after a write (turn_batcher.py);
        the daemon lingers, direct callers (the CLI, tests) get each write at once. `embed`:
        load the embedding model in the background and recall by meaning too (the daemon)."""
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
        self._model: MiniLM | None = None
        self._index: ScopeVectors | None = None
        self._query_vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._wake = threading.Event()
        self._embedder: threading.Thread | None = None
        self._embedder_pool: ThreadPoolExecutor | None = None
        if embed:
            self._embedder_pool = ThreadPoolExecutor(1, thread_name_prefix="memproxy-vectors")
            self._embedder = threading.Thread(
                target=self._embed_forever, name="memproxy-embedder", daemon=True
            )
            self._embedder.start()

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self, reader: bool = False) -> sqlite3.Connection:
        """This thread's connection (each executor thread, and a CLI caller, has its own).

        The first connection brings the schema up to date (migrations); the first that may
        write also rebuilds an outdated text index (never a reader: a recall has a budget).
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
            if reader:  # a recall's ranked matches and their rows stay cached: 4 MiB, not 2
                conn.execute(f"PRAGMA cache_size={-READER_CACHE_KIB}")
            migrate(conn)
            if not reader:
                self._rebuild_outdated_index(conn)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _rebuild_outdated_index(self, conn: sqlite3.Connection) -> None:
        started = time.monotonic()
        if rebuild_fts_if_outdated(conn):
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

    # -- embeddings -------------------------------------------------------------------------

    @property
    def embeddings_ready(self) -> bool:
        return self._model is not None

    def _embed_forever(self) -> None:
        """The embedder thread: load the model, then embed what has no vector, when woken."""
        try:
            from memproxy_cli.memory.embeddings import MiniLM
            from memproxy_cli.memory.heap import release_free_memory
            from memproxy_cli.memory.scope_vectors import COUNT_SQL, LOAD_SQL, ScopeVectors

            model = MiniLM()
            release_free_memory()  # the weights as read, before they were transposed
        except Exception as exc:
            log.warning("memory: embedding model unavailable, recall is lexical only: %s", exc)
            return
        assert self._embedder_pool is not None
        loader = self._embedder_pool

        def load(scope: str) -> tuple[int, int, Iterator[list[tuple[int, bytes]]]]:
            conn = self._connection(reader=True)
            if conn.in_transaction:  # a load that failed before reading its rows
                conn.execute("ROLLBACK")
            conn.execute("BEGIN")
            changes = int(conn.execute(CHANGES_SQL).fetchone()[0])
            count = int(conn.execute(COUNT_SQL, (scope,)).fetchone()[0])

            def chunks() -> Iterator[list[tuple[int, bytes]]]:
                try:
                    cursor = conn.execute(LOAD_SQL, (scope,))
                    while rows := cursor.fetchmany(LOAD_CHUNK):
                        yield rows
                finally:
                    conn.execute("ROLLBACK")

            return changes, count, chunks()

        self._index = ScopeVectors(loader, load)
        self._model = model
        while not self._closed:
            try:
                while not self._closed and self._embed_pending(model):
                    pass
            except Exception as exc:  # the store is closing, or busy: try again when woken
                log.debug("memory: embedding deferred: %s", exc)
            self._wake.wait()
            self._wake.clear()

    def _embed_pending(self, model: MiniLM) -> bool:
        """Embed one batch of memories without a vector; False when none is left."""
        from memproxy_cli.memory.compact import embedding_text, parts

        rows = self._connection(reader=True).execute(_UNEMBEDDED_SQL, (0, EMBED_BATCH)).fetchall()
        if not rows:
            return False
        texts = [embedding_text(*parts(r[2], r[3], r[4])) for r in rows]
        vectors = model.encode(texts)
        updates = [(vectors[i].tobytes(), rows[i][0]) for i in range(len(rows))]
        self._executor.submit(self._write_vectors, updates).result()
        index = self._index
        if index is not None:
            by_scope: dict[str, list[int]] = {}
            for i, row in enumerate(rows):
                by_scope.setdefault(row[1], []).append(i)
            for scope, at in by_scope.items():
                index.add(scope, [int(rows[i][0]) for i in at], vectors[at])
        return True

    def _write_vectors(self, updates: list[tuple[bytes, int]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            conn.executemany("UPDATE memories SET embedding = ? WHERE rowid = ?", updates)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _query_vector(self, query: str) -> Vectors | None:
        """The question's vector; the last `QUERY_VECTORS_KEPT` are kept by their normalized
        text (the model is uncased and splits on whitespace: the same vector), so a question
        asked again, or resent by a retrying client, is not embedded again."""
        model = self._model
        if model is None:
            return None
        key = " ".join(query.split()).lower()
        with self._lock:
            kept = self._query_vectors.get(key)
            if kept is not None:
                self._query_vectors.move_to_end(key)
                return kept
        kept = model.encode_query(query)
        with self._lock:
            self._query_vectors[key] = kept
            while len(self._query_vectors) > QUERY_VECTORS_KEPT:
                self._query_vectors.popitem(last=False)
        return kept

    # -- synchronous operations (executor threads, the CLI) --------------------------------

    def search_sync(self, scope: str, query: str, k: int, now: float | None = None) -> list[Memory]:
        if not query_terms(query) or k <= 0:
            return []
        conn = self._connection()
        now = time.time() if now is None else now
        index = self._index
        vector = self._query_vector(query) if index is not None else None
        conn.execute("BEGIN")  # one snapshot for every statement of the recall
        try:
            if index is not None:
                index.check(int(conn.execute(CHANGES_SQL).fetchone()[0]))
            return self._search.search(conn, scope, query, k, now, index, vector)
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
        kept = stored_turn(turn)
        user, assistant, text, metadata = kept.user, kept.assistant, kept.text, kept.metadata
        row = (memory_id, scope, text, created, json.dumps(metadata), user, assistant)
        conn.execute(_INSERT_SQL, (*row, turn.client, turn.note or None, token_count(text)))
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
        self._wake.set()
        return ids

    def wait_embedded_sync(self) -> bool:
        """Block until the model is loaded and every memory has a vector (tests, benchmarks);
        False when there is no embedder or it stopped."""
        while True:
            if self._model is not None:
                sql = "SELECT count(*) FROM memories WHERE embedding IS NULL"
                if not self._connection(reader=True).execute(sql).fetchone()[0]:
                    return True
                self._wake.set()
            if self._embedder is None or not self._embedder.is_alive():
                return False
            self._embedder.join(0.01)

    def wait_vectors_loaded_sync(self, scope: str) -> bool:
        """Block until `scope`'s vectors are in memory (tests, benchmarks)."""
        while True:
            index = self._index
            if index is not None and index.ready(scope):
                return True
            if self._embedder is None or not self._embedder.is_alive():
                return False
            self._embedder.join(0.01)

    def list_sync(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        rows = self._connection().execute(_LIST_SQL, (scope, limit, offset)).fetchall()
        return [_shown(row_to_memory(row)) for row in rows]

    def forget_sync(self, scope: str | None, memory_id: str) -> bool:
        """Delete one memory and the facts drawn from it; with scope None, wherever it is."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if scope is None:
                cur = conn.execute("DELETE FROM memories WHERE id = ?", (memory_id,))
            else:
                cur = conn.execute(
                    "DELETE FROM memories WHERE id = ? AND scope = ?", (memory_id, scope)
                )
            gone = cur.rowcount > 0
            if gone:
                conn.execute(_FORGET_FACTS_SQL, (memory_id,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return gone

    def export_sync(self, scope: str) -> list[Memory]:
        rows = self._connection().execute(_EXPORT_SQL, (scope,))
        return [_shown(row_to_memory(row)) for row in rows]

    def shutdown_sync(self) -> None:
        """Stop the embedder and close every connection (callers without an event loop)."""
        self._closed = True
        self._wake.set()
        if self._embedder is not None:
            self._embedder.join()
        if self._embedder_pool is not None:
            self._embedder_pool.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self.close_sync()

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
        self._wake.set()
        if self._embedder is not None:
            await asyncio.to_thread(self._embedder.join)
        if self._embedder_pool is not None:
            await asyncio.to_thread(self._embedder_pool.shutdown, True)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._reader.shutdown, True)  # let running searches finish
        await loop.run_in_executor(self._executor, self.close_sync)
        self._executor.shutdown(wait=False)
