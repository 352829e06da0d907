"""The compressed vector index (sign codes, then int8) and the question's embedding: what they
approximate stays close to the exact figures, and what is kept is keyed right."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from memproxy_cli.memory import scope_vectors
from memproxy_cli.memory.embeddings import DIM, MAX_QUERY_TOKENS, MiniLM, model_dir
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.scope_vectors import (
    SHORTLIST_MIN,
    ScopeVectors,
    _larger_half,
    int8_codes,
    sign_codes,
)

Matrix = npt.NDArray[np.float32]


def unit(rng: np.random.Generator, n: int) -> Matrix:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    out: Matrix = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return out


def loaded(vectors: Matrix, chunk: int = 1000) -> Iterator[ScopeVectors]:
    """An index whose scope "p" holds `vectors` as rowids 1..n, loaded in chunks."""
    rows = [(i + 1, vectors[i].tobytes()) for i in range(len(vectors))]

    def load(scope: str) -> tuple[int, int, Iterator[list[tuple[int, bytes]]]]:
        assert scope == "p"
        return 0, len(rows), (rows[i : i + chunk] for i in range(0, len(rows), chunk))

    with ThreadPoolExecutor(1) as pool:
        index = ScopeVectors(pool, load)
        assert index.top("p", vectors[0], 5) is None  # the first search starts the load
        pool.submit(lambda: None).result()  # the load ran before this
        yield index


@pytest.fixture
def model() -> MiniLM:
    return MiniLM()


def test_int8_cosines_are_within_a_hundredth_of_the_exact_ones() -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 500)  # below the shortlist: every vector is ranked
    query = unit(rng, 1)[0]
    for index in loaded(vectors):
        found = index.top("p", query, 50)
        assert found is not None and len(found) == 50
        exact = vectors @ query
        assert max(abs(cos - float(exact[rowid - 1])) for rowid, cos in found.items()) < 0.01
        best = set(int(i) + 1 for i in np.argsort(-exact)[:10])
        assert best <= set(found)


def test_the_sign_codes_shortlist_finds_near_neighbours_in_a_large_scope() -> None:
    rng = np.random.default_rng(2)
    vectors = unit(rng, 40 * SHORTLIST_MIN)  # the shortlist is 3% of it
    query = unit(rng, 1)[0]
    near = [7, 4_321, 19_999]
    for i, rowid in enumerate(near):  # cosines 0.8, 0.7 and 0.6 with the query
        noise = unit(rng, 1)[0]
        noise -= (noise @ query) * query
        noise /= np.linalg.norm(noise)
        cos = 0.8 - 0.1 * i
        vectors[rowid - 1] = cos * query + np.sqrt(1 - cos * cos) * noise
    for index in loaded(vectors, chunk=4096):
        found = index.top("p", query, 10)
        assert found is not None and len(found) == 10
        assert set(near) <= set(found)
        assert max(found, key=lambda r: found[r]) == 7


def test_vectors_stored_while_loading_are_added_once() -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, 40)
    for index in loaded(vectors):
        index.add("p", [39, 40, 41], np.stack([vectors[38], vectors[39], vectors[0]]))
        found = index.top("p", vectors[0], 100)
        assert found is not None
        assert sorted(found) == list(range(1, 42))  # 39 and 40 were loaded already
        assert found[1] == pytest.approx(found[41], abs=1e-6)


def test_a_question_is_embedded_from_its_first_word_pieces(model: MiniLM) -> None:
    head = " ".join(f"word{i}" for i in range(MAX_QUERY_TOKENS))
    a = model.encode_query(head + " the database is PostgreSQL")
    b = model.encode_query(head + " my dog is called Biscuit")
    assert float(a @ b) > 0.9999
    short = model.encode_query("My dog is called Biscuit.")
    assert float(short @ model.encode(["My dog is called Biscuit."])[0]) > 0.9999


def test_half_precision_word_embeddings_change_cosines_by_less_than_a_thousandth(
    model: MiniLM,
) -> None:
    from safetensors.numpy import load_file

    from memproxy_cli.memory.embeddings import load_weights, pooled, reference_hidden

    texts = ["My dog is called Biscuit.", "What is my pet called?", "Run ruff in CI."]
    name = "embeddings.word_embeddings.weight"
    assert model._w[name].dtype == np.float16  # what the runtime reads
    # The table's own effect, on the float32 reference encoder (the int8 runtime's rounding
    # would add its own: test_embeddings_runtime.py bounds that).
    weights = load_weights()
    encodings = model._tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
    half = pooled(reference_hidden(weights, ids, mask), mask)
    weights[name] = load_file(str(model_dir() / "model.safetensors"))[name]
    full = pooled(reference_hidden(weights, ids, mask), mask)
    assert np.abs(half @ half.T - full @ full.T).max() < 1e-3


def test_a_question_asked_again_is_not_embedded_again(tmp_path: Path) -> None:
    store = LocalMemoryBackend(tmp_path / "memory.sqlite3", embed=True)
    try:
        assert store.wait_embedded_sync()
        first = store._query_vector("Which  port does the staging DB use?")
        assert first is not None
        assert store._query_vector("which port does the staging db use?") is first
        other = store._query_vector("which port does production use?")
        assert other is not None and other is not first
    finally:
        store.shutdown_sync()


def reference_distances(vectors: Matrix, query: Matrix) -> npt.NDArray[np.int64]:
    """The weighted sign distance from the signs themselves: each differing sign counts once,
    twice where the query's component is among its larger half."""
    weights = np.where(_larger_half(query), 2, 1)
    differ = (vectors > 0) != (query > 0)
    out: npt.NDArray[np.int64] = (differ * weights).sum(axis=1)
    return out


def reference_cutoff(distance: npt.NDArray[np.integer], count: int) -> npt.NDArray[np.intp]:
    """Every position up to the smallest distance that keeps at least `count`."""
    ordered = np.sort(distance)
    cutoff = ordered[min(count, len(distance)) - 1]
    return np.flatnonzero(distance <= cutoff)


def codes_of(vectors: Matrix) -> npt.NDArray[np.uint64]:
    signs: npt.NDArray[np.uint64] = np.ascontiguousarray(sign_codes(vectors).T)
    return signs


def test_sign_distances_are_the_weighted_count_of_differing_signs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, 2_500)
    for block in (1_000, 4_096):  # blocks that do and do not divide the scope
        monkeypatch.setattr(scope_vectors, "_BLOCK", block)
        for query in unit(rng, 5):
            found = scope_vectors._sign_distances(codes_of(vectors), len(vectors), query)
            assert found.tolist() == reference_distances(vectors, query).tolist()
    # The largest distance (every sign differs) still fits.
    query = unit(rng, 1)[0]
    worst = scope_vectors._sign_distances(codes_of(-query[None]), 1, query)
    assert int(worst[0]) == DIM + DIM // 2


@pytest.mark.parametrize("size", [500, 20_000, 100_000])
@pytest.mark.parametrize("count", [1, 1_000, 3_000, 19_999])
def test_the_cutoff_keeps_what_a_whole_histogram_keeps_ties_included(size: int, count: int) -> None:
    rng = np.random.default_rng(size + count)
    spread = rng.normal(288, 15, size).clip(0, 2 * DIM)  # as sign distances are: many ties
    distance = np.rint(spread).astype(np.uint16)
    found = scope_vectors._within_cutoff(distance, count)
    assert found.tolist() == reference_cutoff(distance, count).tolist()
    assert len(found) >= min(count, size)


def test_the_cutoff_is_exact_when_the_sample_misleads_it() -> None:
    rng = np.random.default_rng(5)
    for near, far in ((100, 600), (600, 100)):  # the guess is too short, then too long
        distance = rng.integers(far, far + 20, 50_000).astype(np.uint16)
        distance[:: scope_vectors._SAMPLE] = near  # every sampled code is where the others are not
        for count in (10, 3_000, 4_000, 45_000, 50_000, 60_000):
            found = scope_vectors._within_cutoff(distance, count)
            assert found.tolist() == reference_cutoff(distance, count).tolist()
    same = np.full(30_000, 7, dtype=np.uint16)  # one distance: every code is at the cut-off
    assert len(scope_vectors._within_cutoff(same, 900)) == 30_000


def test_the_shortlist_is_the_reference_one_on_random_codes() -> None:
    rng = np.random.default_rng(6)
    vectors = unit(rng, 40_000)
    signs = codes_of(vectors)
    for query in unit(rng, 4):
        found = scope_vectors._nearest_signs(signs, len(vectors), query, 1_200)
        expected = reference_cutoff(reference_distances(vectors, query), 1_200)
        assert found.tolist() == expected.tolist()


def test_int8_cosines_are_the_int8_codes_dot_the_query() -> None:
    rng = np.random.default_rng(7)
    small, _ = int8_codes(unit(rng, 3_000))
    query = unit(rng, 1)[0]
    shortlist = np.sort(rng.choice(3_000, 2 * scope_vectors._CHUNK + 37, replace=False))
    found = scope_vectors._int8_cosines(small, shortlist, query)
    expected = small[shortlist].astype(np.float32) @ query
    assert np.allclose(found, expected, rtol=0, atol=1e-4)
