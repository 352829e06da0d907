"""The local backend: natural-language FTS recall, scopes, recency, forget/export, redaction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.fts_query import match_expression, query_terms
from memproxy_cli.memory.local import LocalMemoryBackend

DAY = 86400.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalMemoryBackend]:
    backend = LocalMemoryBackend(tmp_path / "memory.sqlite3", half_life_days=30.0)
    yield backend
    await backend.close()


async def add(
    store: LocalMemoryBackend, scope: str, user: str, assistant: str = "ok", **kw: float
) -> str:
    memory_id = await store.add(
        scope, Turn(user=user, assistant=assistant, created_at=kw.get("at"))
    )
    assert memory_id
    return memory_id


def test_query_terms_drop_stop_words_and_repeats() -> None:
    assert query_terms("What database does THIS project use? The database!") == [
        "database",
        "project",
        "use",
    ]
    assert match_expression("what is it?") is None
    assert match_expression("postgres db") == '"postgres"* OR "db"'


async def test_natural_language_question_finds_the_fact(store: LocalMemoryBackend) -> None:
    await add(store, "p", "we use PostgreSQL 16 for the main db", "Noted.")
    await add(store, "p", "the frontend is written in Svelte", "Good.")
    await add(store, "p", "deploys go through GitHub Actions", "Fine.")
    found = await store.search("p", "what database does this project use?", 5)
    assert found, "the question found nothing"
    assert "PostgreSQL 16" in found[0].text
    assert found[0].text == "User: we use PostgreSQL 16 for the main db\nAssistant: Noted."


async def test_or_semantics_one_matching_term_is_enough(store: LocalMemoryBackend) -> None:
    await add(store, "p", "the frontend is written in Svelte")
    found = await store.search("p", "which svelte version and which bundler and what linter", 5)
    assert [m.text.split("\n")[0] for m in found] == ["User: the frontend is written in Svelte"]


async def test_prefix_matching(store: LocalMemoryBackend) -> None:
    await add(store, "p", "we use PostgreSQL 16 for the main db")
    found = await store.search("p", "postgres", 5)
    assert len(found) == 1


async def test_stop_word_only_and_empty_queries_return_nothing(store: LocalMemoryBackend) -> None:
    await add(store, "p", "what is this and how is it there")
    assert await store.search("p", "what is it?", 5) == []
    assert await store.search("p", "", 5) == []


async def test_fts_syntax_in_questions_is_harmless(store: LocalMemoryBackend) -> None:
    await add(store, "p", "the NEAR operator and column:filters are FTS syntax")
    found = await store.search("p", 'NEAR("x" AND) column: * -- OR ^filters', 5)
    assert len(found) == 1


async def test_scope_isolation(store: LocalMemoryBackend) -> None:
    await add(store, "alpha", "alpha uses PostgreSQL")
    await add(store, "beta", "beta uses MySQL, not PostgreSQL")
    found = await store.search("alpha", "postgresql", 5)
    assert [m.scope for m in found] == ["alpha"]
    assert await store.search("gamma", "postgresql", 5) == []
    assert [m.scope for m in await store.list("beta")] == ["beta"]


async def test_repeats_collapse_to_the_newest_and_old_strong_match_beats_new_weak(
    store: LocalMemoryBackend,
) -> None:
    now = time.time()
    await add(store, "p", "the cache is redis", at=now - 120 * DAY)
    new = await add(store, "p", "The cache is Redis!", at=now - 1 * DAY)
    found = await store.search("p", "redis cache", 5)
    assert [m.id for m in found] == [new]  # a repeat is shown once, as its newest telling

    strong = await add(store, "p", "kafka kafka topics: kafka retention kafka", at=now - 90 * DAY)
    await add(store, "p", "we talked about many things including once kafka", at=now)
    found = await store.search("p", "kafka retention topics", 5)
    assert found[0].id == strong


async def test_top_k_limits_results(store: LocalMemoryBackend) -> None:
    for i in range(10):
        await add(store, "p", f"note {i} about the build system")
    assert len(await store.search("p", "build", 3)) == 3
    assert await store.search("p", "build", 0) == []


async def test_forget_and_export(store: LocalMemoryBackend) -> None:
    first = await add(store, "p", "first fact", at=1000.0)
    second = await add(store, "p", "second fact", at=2000.0)
    assert await store.forget("other-scope", first) is False
    assert await store.forget("p", first) is True
    assert await store.forget("p", first) is False
    assert await store.search("p", "first", 5) == []
    exported = await store.export("p")
    assert [m.id for m in exported] == [second]
    assert exported[0].created_at == 2000.0


async def test_list_is_newest_first_and_pages(store: LocalMemoryBackend) -> None:
    ids = [await add(store, "p", f"fact {i}", at=1000.0 + i) for i in range(5)]
    assert [m.id for m in await store.list("p", limit=2)] == [ids[4], ids[3]]
    assert [m.id for m in await store.list("p", limit=2, offset=4)] == [ids[0]]


async def test_secrets_are_redacted_before_storing(
    store: LocalMemoryBackend, tmp_path: Path
) -> None:
    secret = "sk-ant-api03-" + "q" * 40
    await add(store, "p", f"my key is {secret}", "Bearer abcdefghijklmnop")
    await store.close()
    raw = (tmp_path / "memory.sqlite3").read_bytes()
    wal = tmp_path / "memory.sqlite3-wal"
    assert secret.encode() not in raw + (wal.read_bytes() if wal.exists() else b"")
    reopened = LocalMemoryBackend(tmp_path / "memory.sqlite3")
    try:
        [memory] = await reopened.export("p")
        assert (
            memory.text
            == "User: my key is [REDACTED:anthropic]\nAssistant: Bearer [REDACTED:bearer]"
        )
    finally:
        await reopened.close()


async def test_metadata_and_long_parts_are_clipped(store: LocalMemoryBackend) -> None:
    await store.add("p", Turn(user="u" * 5000, assistant="a" * 9000, model="m1", request_id="r1"))
    [memory] = await store.list("p")
    user, assistant = memory.text.split("\nAssistant: ")
    assert len(user) == len("User: ") + 4000
    assert len(assistant) == 4000
    assert memory.metadata == {"model": "m1", "request_id": "r1", "parts": [4000, 4000]}


async def test_concurrent_adds_from_many_tasks(store: LocalMemoryBackend) -> None:
    await asyncio.gather(*(add(store, "p", f"parallel fact {i}") for i in range(50)))
    assert len(await store.export("p")) == 50


async def test_a_rare_term_outranks_many_newer_common_matches(store: LocalMemoryBackend) -> None:
    for i in range(60):
        await add(store, "p", f"deploy note {i}", at=1000.0 + i)
    rare = await add(store, "p", "deploy uses terraform", at=500.0)
    found = await store.search("p", "terraform deploy", 3)
    assert found[0].id == rare


async def test_a_word_searched_before_it_was_stored_is_found_after(
    store: LocalMemoryBackend,
) -> None:
    assert await store.search("p", "which cache do we use?", 5) == []
    await add(store, "p", "Our cache is Redis 7 named blue-cache.")
    found = await store.search("p", "which cache do we use?", 5)
    assert [m.text for m in found] and "blue-cache" in found[0].text
