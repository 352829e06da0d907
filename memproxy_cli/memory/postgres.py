"""Team memory: memories in PostgreSQL (the `database_url` store), shared by every instance.

The text index is PostgreSQL's (a generated `tsvector` with a GIN index, ranked by
`ts_rank_cd` over a bounded set of each term's newest matches: postgres_text.py); the vectors
are computed in the gateway (embeddings.py) and stored with the turn. With pgvector the server
finds a scope's nearest vectors (exactly, by inner product of unit vectors: no approximate
index, pgvector before 0.8 cannot filter one by scope without losing matches); without it the
gateway keeps each scope's vectors and ranks them itself (postgres_vectors.py). Both lists are
fused exactly as in the local store (local_search.rank): the same scores, newest wins,
duplicates collapsed.

One writer thread stores turns (an upsert: a repeated turn refreshes its memory, whichever
instance stored it first); reader threads recall, each statement of a recall in one read-only
snapshot; an embedder thread loads the model, then embeds the memories stored without a vector
(before the model loaded, or by an instance without one), claiming them with SKIP LOCKED so
instances share that work. No call here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from memproxy_cli.memory.backend import Memory, Turn
from memproxy_cli.memory.fts_query import query_terms
from memproxy_cli.memory.local_search import CANDIDATES, rank, row_to_memory
from memproxy_cli.memory.postgres_schema import enable_pgvector, has_pgvector_column, migrate
from memproxy_cli.memory.postgres_sql import (
    DENSE_SQL,
    EXPORT_SQL,
    FORGET_FACTS_SQL,
    INSERT_SQL,
    LIST_SQL,
    ROWS_SQL,
    STORE_VECTOR_SQL,
    UNEMBEDDED_SQL,
    UNVECTORED_SQL,
    VECTOR_SQL,
    database_identity,
    libpq_url,
    vector_literal,
)
from memproxy_cli.memory.postgres_text import lexical_candidates
from memproxy_cli.memory.stored_turn import stored_turn
from memproxy_cli.memory.turn_text import labeled

if TYPE_CHECKING:
    import psycopg

    from memproxy_cli.memory.embeddings import MiniLM, Vectors
    from memproxy_cli.memory.postgres_vectors import KeptVectors

T = TypeVar("T")
log = logging.getLogger("memproxy.memory")

READERS = 2
EMBED_BATCH = 32
EMBED_POLL_S = 30.0  # how often the embedder looks for other instances' unembedded memories


def _shown(memory: Memory) -> Memory:
    memory.text = labeled(memory.text, memory.metadata.get("parts"))
    return memory


class PostgresMemoryBackend:
    """Memories in PostgreSQL: every instance on the database recalls the same."""

    name = "postgres"

    def __init__(
        self,
        database_url: str,
        half_life_days: float = 30.0,
        embed: bool = False,
        pgvector: bool = True,
    ) -> None:
        """`embed`: load the embedding model in the background and recall by meaning too (the
        daemon). `pgvector`: use the extension where the server has it (false: never)."""
        self._url = libpq_url(database_url)
        self.cache_namespace = "postgres:" + database_identity(self._url)
        self.half_life_days = half_life_days
        self._want_pgvector = pgvector
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="memproxy-pgmemory")
        self._reader = ThreadPoolExecutor(READERS, thread_name_prefix="memproxy-pgrecall")
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._pgvector = False
        self._closed = False
        self._model: MiniLM | None = None
        self._kept: KeptVectors | None = None
        self._wake = threading.Event()
        self._embedder: threading.Thread | None = None
        if embed:
            self._embedder = threading.Thread(
                target=self._embed_forever, name="memproxy-pgembedder", daemon=True
            )
            self._embedder.start()

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """This thread's connection; the first one brings the schema up to date."""
        import psycopg

        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken):
            conn = None
        if conn is None:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            with self._lock:
                self._conns.append(conn)
            if not self._ready.is_set():
                with self._lock:
                    if not self._ready.is_set():
                        migrate(conn)
                        if self._want_pgvector:
                            self._pgvector = enable_pgvector(conn) or has_pgvector_column(conn)
                        self._ready.set()
            self._local.conn = conn
        return conn

    @property
    def uses_pgvector(self) -> bool:
        """Whether the server ranks vectors (known once the store has been opened)."""
        self._connection()
        return self._pgvector

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        used: list[psycopg.Connection[Any]] = []

        def call() -> T:
            used.append(self._connection())
            return fn(*args)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, call)
        except asyncio.CancelledError:
            if used:  # stop the query of a caller that gave up (recall timeout)
                await asyncio.to_thread(used[0].cancel_safe)
            raise

    # -- embeddings -------------------------------------------------------------------------

    @property
    def embeddings_ready(self) -> bool:
        return self._model is not None

    def _embed_forever(self) -> None:
        """The embedder thread: open the store (migrations run before the first recall needs
        them), load the model, then embed what has no vector, when woken or every poll."""
        try:
            self._connection()
        except Exception as exc:  # the database is away: the first call will try again
            log.warning("memory: PostgreSQL store not reachable yet: %s", type(exc).__name__)
        try:
            from memproxy_cli.memory.embeddings import MiniLM
            from memproxy_cli.memory.postgres_vectors import KeptVectors

            model = MiniLM()
        except Exception as exc:
            log.warning("memory: embedding model unavailable, recall is lexical only: %s", exc)
            return
        self._kept = KeptVectors()
        self._model = model
        while not self._closed:
            try:
                while not self._closed and self._embed_pending(model):
                    pass
            except Exception as exc:  # the database is away or closing: try again later
                log.debug("memory: embedding deferred: %s", exc)
            self._wake.wait(EMBED_POLL_S)
            self._wake.clear()

    def _embed_pending(self, model: MiniLM) -> bool:
        """Embed one batch of memories without a vector (and give pgvector the vectors it lacks);
        False when none is left."""
        from memproxy_cli.memory.compact import embedding_text, parts

        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(UNEMBEDDED_SQL, (EMBED_BATCH,))
            # By scope: each scope's count of vectors is a row the trigger locks (postgres_schema
            # m004), so two embedders taking them in one order never wait on each other.
            rows = sorted(cur.fetchall(), key=lambda r: (r[4], r[0]))
            if rows:
                vectors = model.encode([embedding_text(*parts(r[1], r[2], r[3])) for r in rows])
                for row, vector in zip(rows, vectors, strict=True):
                    cur.execute(STORE_VECTOR_SQL, (vector.tobytes(), row[0]))
                    if self._pgvector:
                        cur.execute(VECTOR_SQL, (vector_literal(vector), row[0]))
                return True
            if not self._pgvector:
                return False
            import numpy as np

            cur.execute(UNVECTORED_SQL, (EMBED_BATCH,))
            found = cur.fetchall()
            for seq, data in found:
                vector = np.frombuffer(data, dtype=np.float32)
                cur.execute(VECTOR_SQL, (vector_literal(vector), seq))
            return bool(found)

    def _query_vector(self, query: str) -> Vectors | None:
        model = self._model
        return None if model is None else model.encode([query])[0]

    def wait_embedded_sync(self) -> bool:
        """Block until the model is loaded and every memory has a vector (tests, benchmarks);
        False when there is no embedder or it stopped."""
        while True:
            if self._model is not None:
                sql = "SELECT count(*) FROM memproxy_memories WHERE embedding IS NULL"
                if self._pgvector:
                    sql += " OR embedding_v IS NULL"
                if not self._connection().execute(sql).fetchone()[0]:  # type: ignore[index]
                    return True
                self._wake.set()
            if self._embedder is None or not self._embedder.is_alive():
                return False
            self._embedder.join(0.01)

    # -- synchronous operations (executor threads) -----------------------------------------

    def search_sync(self, scope: str, query: str, k: int, now: float | None = None) -> list[Memory]:
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        now = time.time() if now is None else now
        vector = self._query_vector(query)
        conn = self._connection()
        with conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return self._search(cur, scope, terms, k, now, vector)
            finally:
                cur.execute("ROLLBACK")

    def _search(
        self, cur: Any, scope: str, terms: list[str], k: int, now: float, vector: Vectors | None
    ) -> list[Memory]:
        lexical = lexical_candidates(cur, scope, terms, CANDIDATES)
        dense: dict[int, float] = {}
        if vector is not None:
            if self._pgvector:
                literal = vector_literal(vector)
                cur.execute(DENSE_SQL, (literal, scope, literal, CANDIDATES))
                dense = {int(seq): float(cosine) for seq, cosine in cur.fetchall()}
            elif self._kept is not None:
                dense = self._kept.top(cur, scope, vector, CANDIDATES)
        wanted = sorted(set(lexical) | set(dense))
        if not wanted:
            return []
        cur.execute(ROWS_SQL, (scope, wanted))
        rows = cur.fetchall()
        vectors: dict[int, Any] = {}
        if vector is not None:
            import numpy as np

            for row in rows:
                if row[8] is not None:
                    vectors[int(row[0])] = np.frombuffer(row[8], dtype=np.float32)
            for seq in lexical:
                if seq not in dense and seq in vectors:
                    dense[seq] = float(vectors[seq] @ vector)
        return rank(rows, terms, lexical, dense, vectors, now, self.half_life_days, k)

    def add_sync(self, scope: str, turn: Turn) -> str:
        """Store a turn (with its vector once the model is loaded); a turn whose `dedup_key`
        the scope holds refreshes that memory instead."""
        created = turn.created_at if turn.created_at is not None else time.time()
        kept = stored_turn(turn)
        vector = None
        if self._model is not None:
            from memproxy_cli.memory.compact import embedding_text

            vector = self._model.encode([embedding_text(kept.user, kept.assistant)])[0]
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                INSERT_SQL,
                (
                    secrets.token_hex(8),
                    scope,
                    kept.text,
                    kept.user,
                    kept.assistant,
                    turn.client,
                    turn.note or None,
                    created,
                    json.dumps(kept.metadata),
                    turn.dedup_key,
                    None if vector is None else vector.tobytes(),
                    vector is not None,
                ),
            )
            memory_id, seq = cur.fetchone()  # type: ignore[misc]
            if vector is not None and self._pgvector:
                cur.execute(VECTOR_SQL, (vector_literal(vector), seq))
        if vector is None:
            self._wake.set()
        return str(memory_id)

    def list_sync(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        rows = self._connection().execute(LIST_SQL, (scope, limit, offset)).fetchall()
        return [_shown(row_to_memory(row)) for row in rows]

    def forget_sync(self, scope: str, memory_id: str) -> bool:
        """Delete one memory and the facts drawn from it, in one transaction."""
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "DELETE FROM memproxy_memories WHERE id = %s AND scope = %s", (memory_id, scope)
            )
            gone = cur.rowcount > 0
            if gone:
                cur.execute(FORGET_FACTS_SQL, (scope, memory_id))
        return gone

    def export_sync(self, scope: str) -> list[Memory]:
        rows = self._connection().execute(EXPORT_SQL, (scope,)).fetchall()
        return [_shown(row_to_memory(row)) for row in rows]

    def close_sync(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    # -- the MemoryBackend protocol ---------------------------------------------------------

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        if k <= 0 or not query_terms(query):
            return []
        return await self._read(self.search_sync, scope, query, k)

    async def add(self, scope: str, turn: Turn) -> str | None:
        return await self._write(self.add_sync, scope, turn)

    async def list(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        return await self._read(self.list_sync, scope, limit, offset)

    async def forget(self, scope: str, memory_id: str) -> bool:
        return await self._write(self.forget_sync, scope, memory_id)

    async def export(self, scope: str) -> Sequence[Memory]:
        return await self._read(self.export_sync, scope)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._embedder is not None:
            await asyncio.to_thread(self._embedder.join)
        await asyncio.to_thread(self._reader.shutdown, True)
        await asyncio.to_thread(self._writer.shutdown, True)
        await asyncio.to_thread(self.close_sync)
