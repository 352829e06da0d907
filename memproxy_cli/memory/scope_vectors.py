"""Each scope's embeddings, compressed in memory: sign bits to find candidates, int8 to rank them.

A float32 matrix of a 100k-memory scope is 150 MB, and an exact scan of it costs 7 to 14 ms of
one core (it is memory-bound). Here each vector is kept twice, compressed:

- its 384 signs as six 64-bit words (48 bytes): a distance between sign codes (Hamming, with
  the query's larger components counted twice) orders the whole scope in 1 to 1.5 ms at 100k
  (XOR, AND and popcount, word by word);
- int8 components with one float32 scale (388 bytes): the nearest 3% by Hamming distance are
  ranked again by the int8 cosine, which is within about 0.01 of the exact one.

So 100k memories take 44 MB instead of 150. The exact cosine of the few candidates that reach
the final ranking is computed from the float32 vector stored with each memory (read with the
memory's row, local_search.py).

A scope's codes are loaded from the store the first time it is searched (in the background,
in chunks: that recall is lexical only), then grow as the embedder adds vectors. Any memory
deleted or changed, by any process, drops every scope's codes (they are loaded again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memproxy_cli.memory.embeddings import DIM, Vectors
from memproxy_cli.memory.heap import release_free_memory

LOAD_SQL = (
    "SELECT rowid, embedding FROM memories WHERE scope = ? AND embedding IS NOT NULL ORDER BY rowid"
)
COUNT_SQL = "SELECT count(*) FROM memories WHERE scope = ? AND embedding IS NOT NULL"
WORDS = DIM // 64
# Candidates ranked by their int8 cosine after the sign codes: 3% of the scope, at least 1,000.
# With the shortlist at 1% of the store, our paraphrased questions were answered at 5 for 0.60,
# at 3% for 0.75, ranking every vector for 0.80 (recall_quality.py --shortlist-share).
SHORTLIST_SHARE = 0.03
SHORTLIST_MIN = 1000
_INITIAL = 64
_BLOCK = 32768  # codes compared at a time: 0.55 ms instead of 0.8 at 100k
_CHUNK = 256  # shortlisted codes converted to float32 at a time
_SAMPLE = 16  # every 16th distance guesses the cut-off (_within_cutoff)
_SAMPLE_MARGIN = 1.25  # the guess aims at 25% more codes than wanted
_SAMPLE_FROM = 8192  # distances of a smaller scope go straight to the whole histogram

Rows = Iterable[Sequence[tuple[int, bytes]]]


def sign_codes(vectors: Vectors) -> npt.NDArray[np.uint64]:
    """(n, WORDS) words of the components' signs."""
    packed = np.packbits(vectors > 0, axis=1)
    return np.ascontiguousarray(packed).view(np.uint64).reshape(len(vectors), WORDS)


def int8_codes(vectors: Vectors) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Components scaled to int8 (the largest to 127) and each vector's scale."""
    scale = np.maximum(np.abs(vectors).max(axis=1), np.float32(1e-9)) / np.float32(127.0)
    quantized = np.rint(vectors / scale[:, None]).astype(np.int8)
    return quantized, scale.astype(np.float32)


@dataclass
class _Codes:
    signs: npt.NDArray[np.uint64] = field(
        default_factory=lambda: np.zeros((WORDS, _INITIAL), dtype=np.uint64)
    )  # word-major: each word of every vector is one contiguous row
    small: npt.NDArray[np.int8] = field(
        default_factory=lambda: np.zeros((_INITIAL, DIM), dtype=np.int8)
    )
    scale: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros(_INITIAL, dtype=np.float32)
    )
    rowids: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(_INITIAL, dtype=np.int64)
    )
    size: int = 0

    def reserve(self, need: int) -> None:
        if need <= len(self.rowids):
            return
        capacity = max(need, 2 * len(self.rowids))
        n = self.size
        signs = np.zeros((WORDS, capacity), dtype=np.uint64)
        signs[:, :n] = self.signs[:, :n]
        small = np.zeros((capacity, DIM), dtype=np.int8)
        small[:n] = self.small[:n]
        scale = np.zeros(capacity, dtype=np.float32)
        scale[:n] = self.scale[:n]
        rowids = np.zeros(capacity, dtype=np.int64)
        rowids[:n] = self.rowids[:n]
        self.signs, self.small, self.scale, self.rowids = signs, small, scale, rowids

    def append(self, rowids: Sequence[int], vectors: Vectors) -> None:
        ids = np.asarray(rowids, dtype=np.int64)
        if self.size and ids.size and int(ids.min()) <= int(self.rowids[self.size - 1]):
            keep = ~np.isin(ids, self.rowids[: self.size])  # rows the load already read
            ids, vectors = ids[keep], vectors[keep]
        if not ids.size:
            return
        self.reserve(self.size + len(ids))
        at = slice(self.size, self.size + len(ids))
        self.signs[:, at] = sign_codes(vectors).T
        self.small[at], self.scale[at] = int8_codes(vectors)
        self.rowids[at] = ids
        self.size += len(ids)


class ScopeVectors:
    """Safe to use from several threads."""

    def __init__(self, loader: Executor, load: Callable[[str], tuple[int, int, Rows]]) -> None:
        """`load(scope)`: the store's count of changes, the scope's count of vectors, and its
        (rowid, embedding) rows in chunks, read in one transaction, run on `loader`."""
        self._loader = loader
        self._load = load
        self._scopes: dict[str, _Codes] = {}
        self._loading: dict[str, list[tuple[Sequence[int], Vectors]]] = {}
        self._lock = threading.Lock()
        self._changes = -1

    def check(self, changes: int) -> None:
        """Drop every scope's codes when the store's count of deleted or changed memories
        moved."""
        with self._lock:
            if changes != self._changes:
                if self._changes >= 0:
                    self._scopes.clear()
                self._changes = changes

    def _codes(self, scope: str) -> _Codes | None:
        with self._lock:
            codes = self._scopes.get(scope)
            if codes is None and scope not in self._loading:
                self._loading[scope] = []
                self._loader.submit(self._fill, scope)
            return codes

    def _fill(self, scope: str) -> None:
        try:
            changes, count, chunks = self._load(scope)
            codes = _Codes()
            codes.reserve(count)
            for chunk in chunks:  # never the whole scope's float32 vectors at once
                vectors = np.frombuffer(b"".join(r[1] for r in chunk), dtype=np.float32)
                codes.append([int(r[0]) for r in chunk], vectors.reshape(len(chunk), DIM))
            with self._lock:
                if self._changes < 0:
                    self._changes = changes
                if changes == self._changes:
                    for rowids, added in self._loading.get(scope, []):  # stored meanwhile
                        codes.append(rowids, added)
                    self._scopes[scope] = codes
        finally:
            with self._lock:
                self._loading.pop(scope, None)
            release_free_memory()

    def ready(self, scope: str) -> bool:
        return self._codes(scope) is not None

    def add(self, scope: str, rowids: Sequence[int], vectors: Vectors) -> None:
        """Vectors just stored (the scope's codes, if loaded, grow)."""
        with self._lock:
            codes = self._scopes.get(scope)
            if codes is not None:
                codes.append(rowids, vectors)
            elif scope in self._loading:
                self._loading[scope].append((rowids, vectors))

    def top(self, scope: str, query: Vectors, n: int) -> dict[int, float] | None:
        """About the `n` nearest rowids of `scope` and their int8 cosine; None while not
        loaded."""
        codes = self._codes(scope)
        if codes is None:
            return None
        with self._lock:  # appends write past `size` or into new arrays: a snapshot is enough
            size, signs, small, scale = codes.size, codes.signs, codes.small, codes.scale
            rowids = codes.rowids
        if size == 0:
            return {}
        count = max(SHORTLIST_MIN, int(size * SHORTLIST_SHARE))
        whole = size <= count
        shortlist = np.arange(size) if whole else _nearest_signs(signs, size, query, count)
        cosines = _int8_cosines(small, shortlist, query) * scale[shortlist]
        if len(shortlist) > n:
            best = np.argpartition(-cosines, n)[:n]
            shortlist, cosines = shortlist[best], cosines[best]
        return dict(zip(rowids[shortlist].tolist(), cosines.tolist(), strict=True))


def _int8_cosines(
    small: npt.NDArray[np.int8], shortlist: npt.NDArray[np.intp], query: Vectors
) -> npt.NDArray[np.float32]:
    """The unscaled int8 cosine of each shortlisted code with `query`, `_CHUNK` codes at a time
    (a float32 copy of the whole shortlist would be 4.6 MB at 100k): each chunk's rows are
    gathered into one int8 buffer and converted into one float32 buffer, both reused."""
    cosines = np.empty(len(shortlist), dtype=np.float32)
    rows = np.empty((min(len(shortlist), _CHUNK), DIM), dtype=np.int8)
    floats = np.empty(rows.shape, dtype=np.float32)
    for start in range(0, len(shortlist), _CHUNK):
        part = shortlist[start : start + _CHUNK]
        n = len(part)
        np.take(small, part, axis=0, out=rows[:n])
        np.copyto(floats[:n], rows[:n], casting="unsafe")
        np.matmul(floats[:n], query, out=cosines[start : start + n])
    return cosines


def _nearest_signs(
    signs: npt.NDArray[np.uint64], size: int, query: Vectors, count: int
) -> npt.NDArray[np.intp]:
    """Positions of at least `count` codes nearest to `query` (every code at the cut-off
    distance is kept).

    The distance counts the signs that differ from the query's, twice where the query's
    component is among its larger half: a cheap stand-in for the query's own weights, which
    kept 96% of the exact top 5 in a shortlist of 3% against 92% for the plain Hamming
    distance (docs/memory.md)."""
    return _within_cutoff(_sign_distances(signs, size, query), count)


def _sign_distances(
    signs: npt.NDArray[np.uint64], size: int, query: Vectors
) -> npt.NDArray[np.uint16]:
    """The weighted sign distance of the first `size` codes to `query`, `_BLOCK` codes at a
    time (a block's temporaries stay in the CPU's cache). A word's two counts (its differing
    signs, then those among the larger half) add up to at most 128, so they are added as
    uint8 before the six words are summed into uint16."""
    codes = sign_codes(query[None])[0][:, None]
    large = sign_codes(_larger_half(query)[None].astype(np.float32))[0][:, None]
    block = min(size, _BLOCK)
    word = np.empty((WORDS, block), dtype=np.uint64)
    ones = np.empty((WORDS, block), dtype=np.uint8)
    twice = np.empty((WORDS, block), dtype=np.uint8)
    distance = np.empty(size, dtype=np.uint16)
    for start in range(0, size, block):
        end = min(size, start + block)
        n = end - start
        differ, counted, again = word[:, :n], ones[:, :n], twice[:, :n]
        np.bitwise_xor(signs[:, start:end], codes, out=differ)
        np.bitwise_count(differ, out=counted)
        np.bitwise_and(differ, large, out=differ)
        np.bitwise_count(differ, out=again)
        np.add(counted, again, out=counted)
        counted.sum(axis=0, dtype=np.uint16, out=distance[start:end])
    return distance


def _within_cutoff(distance: npt.NDArray[np.uint16], count: int) -> npt.NDArray[np.intp]:
    """Positions of every distance up to the smallest cut-off that keeps at least `count`.

    A histogram of every `_SAMPLE`th distance guesses a cut-off a little past the one wanted;
    when the distances up to it are at least `count` (almost always), the histogram of those
    alone finds the exact cut-off, which is then the same as the whole histogram's. Otherwise
    the whole histogram is used."""
    size = len(distance)
    if size >= _SAMPLE_FROM and count < size:
        sample = np.bincount(distance[::_SAMPLE], minlength=2 * DIM + 1)
        guess = int(np.searchsorted(np.cumsum(sample), count * _SAMPLE_MARGIN / _SAMPLE))
        near = np.flatnonzero(distance <= guess)
        if len(near) >= count:
            close = distance[near]
            cutoff = int(np.searchsorted(np.cumsum(np.bincount(close)), count))
            return near[close <= cutoff]
    histogram = np.cumsum(np.bincount(distance, minlength=2 * DIM + 1))
    cutoff = int(np.searchsorted(histogram, count))
    return np.flatnonzero(distance <= cutoff)


def _larger_half(query: Vectors) -> npt.NDArray[np.bool_]:
    """The components at or above the median magnitude (np.median's value, found by a
    partition: a quarter of its cost)."""
    magnitude = np.abs(query)
    middle = np.partition(magnitude, (DIM // 2 - 1, DIM // 2))[DIM // 2 - 1 : DIM // 2 + 1]
    result: npt.NDArray[np.bool_] = magnitude >= middle.mean()
    return result
