"""A scope's nearest memories where the server has no pgvector: its vectors kept in the gateway.

Each scope's float32 vectors are read from the store the first time the scope is searched, then
kept current with it at every recall, in the recall's snapshot: the vectors another instance
stored since (by `embedded_seq`) are appended; a deletion anywhere (the store's count of
deletions moved) or a count that still differs (a vector committed out of order) reloads the
scope. The scope's count is one row a trigger keeps (postgres_schema.m004), not a count of its
index. The search is exact: one matrix product, as in the local store (scope_vectors.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from memproxy_cli.memory.embeddings import DIM, Vectors

# The store's count of deletions, the scope's count of vectors (kept by a trigger:
# postgres_schema.m004) and its newest vector's `embedded_seq` (from the end of an index).
_STATE_SQL = """
SELECT (SELECT changes FROM memproxy_memory_changes WHERE id = 1),
    coalesce((SELECT vectors FROM memproxy_scope_vectors WHERE scope = %(scope)s), 0),
    coalesce((SELECT max(embedded_seq) FROM memproxy_memories
        WHERE scope = %(scope)s AND embedded_seq IS NOT NULL), 0)
"""
_SINCE_SQL = """
SELECT seq, embedding, embedded_seq FROM memproxy_memories
WHERE scope = %s AND embedded_seq > %s ORDER BY embedded_seq
"""


@dataclass
class _Matrix:
    """A scope's float32 vectors, grown by doubling; each rowid once."""

    vectors: Vectors = field(default_factory=lambda: np.zeros((64, DIM), dtype=np.float32))
    rowids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(64, dtype=np.int64))
    size: int = 0
    position: dict[int, int] = field(default_factory=dict)

    def append(self, rowids: Sequence[int], vectors: Vectors) -> None:
        fresh = [i for i, r in enumerate(rowids) if r not in self.position]
        if not fresh:
            return
        need = self.size + len(fresh)
        if need > len(self.rowids):
            capacity = max(need, 2 * len(self.rowids))
            grown = np.zeros((capacity, DIM), dtype=np.float32)
            grown[: self.size] = self.vectors[: self.size]
            ids = np.zeros(capacity, dtype=np.int64)
            ids[: self.size] = self.rowids[: self.size]
            self.vectors, self.rowids = grown, ids
        for i in fresh:
            self.position[rowids[i]] = self.size
            self.rowids[self.size] = rowids[i]
            self.vectors[self.size] = vectors[i]
            self.size += 1


class _Kept:
    def __init__(self, changes: int) -> None:
        self.changes = changes
        self.matrix = _Matrix()
        self.upto = 0  # the highest embedded_seq appended


class KeptVectors:
    """Safe to use from several threads."""

    def __init__(self) -> None:
        self._scopes: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def _current(self, cur: Any, scope: str) -> _Kept:
        """The scope's vectors as the cursor's snapshot has them."""
        cur.execute(_STATE_SQL, {"scope": scope})
        changes, count, newest = (int(v) for v in cur.fetchone())
        with self._lock:
            kept = self._scopes.get(scope)
        if (
            kept is not None
            and kept.changes == changes
            and kept.matrix.size == count
            and kept.upto == newest
        ):
            return kept
        if kept is None or kept.changes != changes:
            kept = _Kept(changes)
        for attempt in range(2):
            if attempt:  # a vector committed out of order: read the scope again
                kept = _Kept(changes)
            cur.execute(_SINCE_SQL, (scope, kept.upto))
            rows = cur.fetchall()
            if rows:
                with self._lock:
                    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
                    kept.matrix.append([int(r[0]) for r in rows], vectors.reshape(-1, DIM))
                    kept.upto = max(kept.upto, int(rows[-1][2]))
            if kept.matrix.size == count:
                break
        with self._lock:
            self._scopes[scope] = kept
        return kept

    def top(self, cur: Any, scope: str, query: Vectors, n: int) -> dict[int, float]:
        """The `n` nearest memories (seq) of `scope` and their cosine."""
        kept = self._current(cur, scope)
        with self._lock:
            matrix = kept.matrix
            size, vectors, keys = matrix.size, matrix.vectors, matrix.rowids
        if size == 0:
            return {}
        scores = vectors[:size] @ query
        best = np.argpartition(-scores, n)[:n] if size > n else np.arange(size)
        return {int(keys[i]): float(scores[i]) for i in best}

    def forget(self, scopes: Sequence[str]) -> None:
        with self._lock:
            for scope in scopes:
                self._scopes.pop(scope, None)
