"""The embedding runtime: onnxruntime over the graph built from the packaged weights agrees with
the float32 numpy reference, pads batches without changing a text's vector, and when it cannot
run, the model is unavailable and recall goes on by words."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.embeddings import (
    DIM,
    MiniLM,
    ModelUnavailable,
    load_weights,
    pooled,
    reference_hidden,
)
from memproxy_cli.memory.local import LocalMemoryBackend

TEXTS = [
    "hi",
    "Which port does the staging database listen on?",
    "Where do I connect to reach the pre-production Postgres?",
    "My dog is called Biscuit, she is a beagle.",
    "We moved the staging database to port 6543 this week because the old one clashed with "
    "the analytics replica, and the migration scripts were updated to match.",
    "Why does the CSV export throw a KeyError when the payload is empty? " * 12,  # clipped: 128
]


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()


def test_the_runtime_agrees_with_the_numpy_reference(model: MiniLM) -> None:
    weights = load_weights()
    encodings = model._tokenizer.encode_batch(TEXTS)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
    reference = pooled(reference_hidden(weights, ids, mask), mask)
    vectors = model.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * reference).sum(1)
    # int8 weights and the erf GELU (the reference uses tanh's): 0.9986 at worst on 1,000 texts
    assert cosines.min() > 0.995, cosines
    # and the same ranking of the others against the first question
    assert (
        np.argsort(vectors[1] @ vectors.T).tolist()
        == np.argsort(reference[1] @ reference.T).tolist()
    )


def test_padding_a_batch_does_not_change_a_text(model: MiniLM) -> None:
    alone = np.stack([model.encode_query(t) for t in TEXTS[:4]])
    batched = model.encode(TEXTS)[:4]  # padded to the longest text's 128 pieces
    # The padding is masked out of attention and pooling; the int8 kernels' rounding differs
    # a little with the batch's shape ("hi" padded from 3 to 128 pieces: 0.998).
    assert (alone * batched).sum(1).min() > 0.995


def test_without_onnxruntime_the_model_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(ModelUnavailable, match="onnxruntime"):
        MiniLM()


def test_without_onnxruntime_recall_goes_on_by_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    store = LocalMemoryBackend(tmp_path / "memory.sqlite3", embed=True)
    try:
        store.add_sync("p", Turn(user="Our staging database listens on port 5433.", assistant="Ok"))
        assert not store.wait_embedded_sync()  # the embedder gave up
        assert not store.embeddings_ready
        found = store.search_sync("p", "staging database port", 5)
        assert found and "5433" in found[0].text
    finally:
        store.shutdown_sync()
