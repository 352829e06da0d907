"""Recall by meaning with the packaged model: paraphrases, newest wins, compact memories, the
backfill of an upgraded store, and scopes kept apart at 100k memories."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.embeddings import DIM, MODEL_SHA256, MiniLM, ModelUnavailable, model_dir
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.local_schema import migrate
from memproxy_cli.memory.local_search import FRESHNESS_WEIGHT, MIN_COSINE
from tests.test_memory_local_schema import released_store

DAY = 86400.0
NOW = 2_000_000_000.0
CHATTER = (
    "Why does the CSV export throw a KeyError when the payload is empty?",
    "Add type hints to the retry logic and fix the mypy errors.",
    "The unit test for the rate limiter is flaky, can you look?",
    "Split the report builder into smaller functions.",
    "Log a warning in the config parser when the input is malformed.",
)


def hybrid(path: Path) -> LocalMemoryBackend:
    return LocalMemoryBackend(path, embed=True)


def ready(store: LocalMemoryBackend, scope: str = "p") -> None:
    assert store.wait_embedded_sync()
    assert store.wait_vectors_loaded_sync(scope)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalMemoryBackend]:
    backend = hybrid(tmp_path / "memory.sqlite3")
    yield backend
    backend.shutdown_sync()


def told(user: str, days_ago: float, assistant: str = "Noted.") -> Turn:
    return Turn(user=user, assistant=assistant, created_at=NOW - days_ago * DAY)


def chatter(n: int) -> list[Turn]:
    rng = random.Random(3)
    return [told(rng.choice(CHATTER), rng.uniform(0, 50), "Done.") for _ in range(n)]


def test_the_packaged_weights_are_the_upstream_model() -> None:
    import hashlib

    digest = hashlib.sha256((model_dir() / "model.safetensors").read_bytes()).hexdigest()
    assert digest == MODEL_SHA256


def test_other_weights_are_refused(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not the model")
    with pytest.raises(ModelUnavailable):
        MiniLM(tmp_path)


def test_embeddings_put_paraphrases_close() -> None:
    model = MiniLM()
    a, b, c = model.encode(
        ["My dog is called Biscuit.", "What is the name of my pet?", "Run the linter in CI."]
    )
    assert a.shape == (DIM,) and abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    assert float(a @ b) > float(a @ c) + 0.2


def test_a_paraphrased_question_finds_the_fact(store: LocalMemoryBackend) -> None:
    store.add_many_sync("p", [*chatter(60), told("My dog is called Biscuit, a beagle.", 30)])
    ready(store)
    found = store.search_sync("p", "What's the name of my pet?", 5, now=NOW)
    assert found and "Biscuit" in found[0].text
    lexical = LocalMemoryBackend(store.path)  # the CLI's view: words only
    try:
        assert not any("Biscuit" in m.text for m in lexical.search_sync("p", "name of my pet?", 5))
    finally:
        lexical.close_sync()


def test_the_newest_value_wins_and_the_older_is_not_shown(store: LocalMemoryBackend) -> None:
    old = told("Our staging database listens on port 5433.", 20)
    new = told("We moved the staging database to port 6543 this week.", 2)
    unrelated = told("Our production database listens on the default port.", 10)
    store.add_many_sync("p", [*chatter(60), old, new, unrelated])
    ready(store)
    texts = [m.text for m in store.search_sync("p", "What port is staging on now?", 5, now=NOW)]
    assert texts and "6543" in texts[0]
    assert not any("5433" in t for t in texts)


def test_memories_are_compact_statement_and_gist(store: LocalMemoryBackend) -> None:
    answer = "Use port 6543 for staging. " + "Here is a long explanation of why. " * 60
    store.add_sync("p", told("which port is staging on?", 1, answer))
    [memory] = store.search_sync("p", "staging port", 5, now=NOW)
    assert memory.text.startswith(
        "User: which port is staging on?\nAssistant: Use port 6543 for staging. Here is"
    )
    assert len(memory.text) <= 260  # the first sentences, up to 200 characters
    [full] = store.export_sync("p")
    assert len(full.text) > 2000  # what is kept stays whole


def test_turn_parts_client_and_note_are_stored(store: LocalMemoryBackend) -> None:
    turn = Turn(user="u text", assistant="a text", client="claude-cli", note="a fact")
    store.add_sync("p", turn)
    with sqlite3.connect(store.path) as conn:
        row = conn.execute(
            "SELECT user_text, assistant_text, client, note FROM memories"
        ).fetchone()
    conn.close()
    assert row == ("u text", "a text", "claude-cli", "a fact")


def test_an_upgraded_store_recalls_at_once_and_by_meaning_after_the_backfill(
    tmp_path: Path,
) -> None:
    path = tmp_path / "memory.sqlite3"
    released_store(path, ["User: My cat is named Miso.\nAssistant: Cute!", "User: run ruff"])
    store = hybrid(path)
    try:
        found = store.search_sync("p", "miso", 5)  # before any vector: by words
        assert [m.id for m in found] == ["m0"]
        ready(store)
        with sqlite3.connect(path) as conn:
            (missing,) = conn.execute(
                "SELECT count(*) FROM memories WHERE embedding IS NULL"
            ).fetchone()
        conn.close()
        assert missing == 0
        assert store.search_sync("p", "what do I call my feline?", 1)[0].id == "m0"
    finally:
        store.shutdown_sync()


def bulk_store(path: Path, scopes: int, per_scope: int) -> list[str]:
    """`scopes * per_scope` memories with random unit vectors, inserted in one transaction."""
    rng = np.random.default_rng(5)
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    names = [f"proj{i}" for i in range(scopes)]
    conn.execute("BEGIN")
    for s, scope in enumerate(names):
        vectors = rng.standard_normal((per_scope, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        conn.executemany(
            "INSERT INTO memories (id, scope, text, created_at, metadata, user_text,"
            " assistant_text, embedding) VALUES (?, ?, ?, ?, '{}', ?, 'ok', ?)",
            (
                (
                    f"{s}-{i}",
                    scope,
                    f"User: {scope} note {i} about the deploy port\nAssistant: ok",
                    NOW - i,
                    f"{scope} note {i} about the deploy port",
                    vectors[i].tobytes(),
                )
                for i in range(per_scope)
            ),
        )
    conn.execute("COMMIT")
    conn.close()
    return names


def test_never_a_memory_of_another_scope_at_100k(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    names = bulk_store(path, scopes=20, per_scope=5000)
    store = hybrid(path)
    try:
        store.add_sync("proj3", told("My dog is called Biscuit.", 1))
        assert store.wait_embedded_sync()
        for scope in names:
            assert store.wait_vectors_loaded_sync(scope)
            for question in ("which deploy port?", "what is my pet called?", "proj3 note 7"):
                found = store.search_sync(scope, question, 10, now=NOW)
                assert found or question != "which deploy port?", scope
                assert {m.scope for m in found} <= {scope}
                assert all(
                    m.id.startswith(f"{names.index(scope)}-") or scope == "proj3" for m in found
                )
        pet = store.search_sync("proj3", "what is my pet called?", 3, now=NOW)
        assert "Biscuit" in pet[0].text
        assert not any("Biscuit" in m.text for m in store.search_sync("proj4", "my pet", 10))
    finally:
        store.shutdown_sync()


def test_forget_drops_the_vector_too(store: LocalMemoryBackend) -> None:
    memory_id = store.add_sync("p", told("My dog is called Biscuit.", 1))
    store.add_sync("p", told("The CI runs on GitHub Actions.", 1))
    ready(store)
    assert store.search_sync("p", "name of my pet?", 1, now=NOW)[0].id == memory_id
    assert store.forget_sync("p", memory_id)
    assert all(m.id != memory_id for m in store.search_sync("p", "name of my pet?", 5, now=NOW))


def test_a_memory_just_above_the_cosine_floor_is_recalled_by_meaning_alone(
    tmp_path: Path,
) -> None:
    """The exact cosine decides, however near the floor: the int8 one only skips rows far
    below it."""
    question = "xylophone quartz?"  # no memory shares a word with it
    query = MiniLM().encode_query(question)
    rng = np.random.default_rng(9)

    def at(cos: float) -> np.ndarray:
        noise = rng.standard_normal(DIM).astype(np.float32)
        noise -= (noise @ query) * query
        noise /= np.linalg.norm(noise)
        vector: np.ndarray = (cos * query + np.sqrt(1 - cos * cos) * noise).astype(np.float32)
        return vector

    path = tmp_path / "memory.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    cosines = {"above": MIN_COSINE + 0.005, "below": MIN_COSINE - 0.005, "far": 0.05}
    for name, cos in cosines.items():
        conn.execute(
            "INSERT INTO memories (id, scope, text, created_at, metadata, user_text,"
            " assistant_text, embedding) VALUES (?, 'p', ?, ?, '{}', ?, 'ok', ?)",
            (name, f"User: {name}\nAssistant: ok", NOW, name, at(cos).tobytes()),
        )
    conn.close()
    store = hybrid(path)
    try:
        ready(store)
        found = store.search_sync("p", question, 5, now=NOW)
        assert [m.id for m in found] == ["above"]
        assert found[0].score == pytest.approx(cosines["above"] + FRESHNESS_WEIGHT, abs=1e-4)
    finally:
        store.shutdown_sync()
