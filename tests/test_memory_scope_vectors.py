"""The compressed vector index (sign codes, then int8) and the question's embedding: what they
approximate stays close to the exact figures, and what is kept is keyed right."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from memproxy_cli.memory.embeddings import DIM, MAX_QUERY_TOKENS, MiniLM, model_dir
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.scope_vectors import SHORTLIST_MIN, ScopeVectors

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
