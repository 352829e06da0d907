"""Each scope's embeddings as one float32 matrix in memory, searched exactly with a dot product.

A scope's matrix is loaded from the store the first time it is searched (in the background: that
recall is lexical only), then grows as the embedder adds vectors. Any memory deleted or changed,
by any process, drops every matrix (they are loaded again). At 100k memories a search reads
150 MB of vectors: exact search stays simpler and exact where an approximate index would not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memproxy_cli.memory.embeddings import DIM, Vectors

LOAD_SQL = (
    "SELECT rowid, embedding FROM memories WHERE scope = ? AND embedding IS NOT NULL ORDER BY rowid"
)


@dataclass
class _Matrix:
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


class ScopeVectors:
    """Safe to use from several threads."""

    def __init__(
        self, loader: Executor, load: Callable[[str], tuple[int, list[tuple[int, bytes]]]]
    ) -> None:
        """`load(scope)`: the store's count of changes and the scope's (rowid, embedding),
        read in one transaction, run on `loader`."""
        self._loader = loader
        self._load = load
        self._scopes: dict[str, _Matrix] = {}
        self._loading: dict[str, list[tuple[Sequence[int], Vectors]]] = {}
        self._lock = threading.Lock()
        self._changes = -1

    def check(self, changes: int) -> None:
        """Drop every matrix when the store's count of deleted or changed memories moved."""
        with self._lock:
            if changes != self._changes:
                if self._changes >= 0:
                    self._scopes.clear()
                self._changes = changes

    def _matrix(self, scope: str) -> _Matrix | None:
        with self._lock:
            matrix = self._scopes.get(scope)
            if matrix is None and scope not in self._loading:
                self._loading[scope] = []
                self._loader.submit(self._fill, scope)
            return matrix

    def _fill(self, scope: str) -> None:
        try:
            changes, rows = self._load(scope)
            matrix = _Matrix()
            if rows:
                vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
                matrix.append([int(r[0]) for r in rows], vectors.reshape(len(rows), DIM))
            with self._lock:
                if self._changes < 0:
                    self._changes = changes
                if changes == self._changes:
                    for rowids, added in self._loading.get(scope, []):  # stored meanwhile
                        matrix.append(rowids, added)
                    self._scopes[scope] = matrix
        finally:
            with self._lock:
                self._loading.pop(scope, None)

    def ready(self, scope: str) -> bool:
        return self._matrix(scope) is not None

    def add(self, scope: str, rowids: Sequence[int], vectors: Vectors) -> None:
        """Vectors just stored (the scope's matrix, if loaded, grows)."""
        with self._lock:
            matrix = self._scopes.get(scope)
            if matrix is not None:
                matrix.append(rowids, vectors)
            elif scope in self._loading:
                self._loading[scope].append((rowids, vectors))

    def top(self, scope: str, query: Vectors, n: int) -> dict[int, float] | None:
        """The `n` nearest rowids of `scope` and their cosine; None while not loaded."""
        matrix = self._matrix(scope)
        if matrix is None:
            return None
        with self._lock:
            size, vectors, rowids = matrix.size, matrix.vectors, matrix.rowids
        if size == 0:
            return {}
        scores = vectors[:size] @ query
        best = np.argpartition(-scores, n)[:n] if size > n else np.arange(size)
        return {int(rowids[i]): float(scores[i]) for i in best}

    def vectors_of(self, scope: str, rowids: Sequence[int]) -> dict[int, Vectors]:
        matrix = self._matrix(scope)
        if matrix is None:
            return {}
        with self._lock:
            return {r: matrix.vectors[matrix.position[r]] for r in rowids if r in matrix.position}
