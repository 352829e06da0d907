"""Kept match windows: later recalls see turns stored since, and never what was forgotten."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import memproxy_cli.memory.local as local
from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.match_window import Match, WindowCache, new_window, rowid


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalMemoryBackend]:
    backend = LocalMemoryBackend(tmp_path / "memory.sqlite3")
    yield backend
    await backend.close()


async def add(store: LocalMemoryBackend, user: str, at: float = 1000.0, scope: str = "p") -> str:
    memory_id = await store.add(scope, Turn(user=user, assistant="ok", created_at=at))
    assert memory_id
    return memory_id


def fresh_ranking(path: Path, scope: str, query: str, k: int) -> list[str]:
    """The same search in a new backend, with nothing kept from earlier recalls."""
    fresh = LocalMemoryBackend(path)
    try:
        return [m.id for m in fresh.search_sync(scope, query, k, now=5000.0)]
    finally:
        fresh.close_sync()


async def test_a_turn_stored_after_a_recall_is_found_by_the_next(
    store: LocalMemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "TERM_MATCH_BUDGET", 8)
    for i in range(20):
        await add(store, f"deploy note {i} about the staging cluster", at=1000.0 + i)
    before = await store.search("p", "deploy", 3)
    newest = await add(store, "deploy went out on friday", at=2000.0)
    after = await store.search("p", "deploy", 3)
    assert newest in [m.id for m in after]
    assert newest not in [m.id for m in before]


async def test_topped_up_window_ranks_like_a_fresh_search(
    store: LocalMemoryBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "TERM_MATCH_BUDGET", 40)
    for i in range(30):
        words = "the cache holds item" if i % 3 else "the cache cache holds item"
        await add(store, f"{words} {i} for the report service", at=1000.0 + i * 10)
    store.search_sync("p", "cache", 10, now=5000.0)  # builds and keeps the window
    await add(store, "cache cache cache", at=1400.0)  # stored since: scored when topped up
    await add(store, "an unrelated note about billing", at=1401.0)
    await add(store, "a cache policy", at=1402.0)
    kept = [m.id for m in store.search_sync("p", "cache", 5, now=5000.0)]
    assert kept == fresh_ranking(tmp_path / "memory.sqlite3", "p", "cache", 5)


async def test_a_forgotten_memory_is_never_recalled_from_a_kept_window(
    store: LocalMemoryBackend, tmp_path: Path
) -> None:
    keep = await add(store, "the billing service uses Stripe", at=1000.0)
    gone = await add(store, "the billing service moved to Adyen", at=2000.0)
    assert {m.id for m in await store.search("p", "billing", 5)} == {keep, gone}
    # Forgotten from another process (the CLI opens the store directly).
    with sqlite3.connect(tmp_path / "memory.sqlite3") as conn:
        conn.execute("DELETE FROM memories WHERE id = ?", (gone,))
    assert [m.id for m in await store.search("p", "billing", 5)] == [keep]


async def test_windows_are_shared_across_scopes_but_results_stay_in_scope(
    store: LocalMemoryBackend,
) -> None:
    a = await add(store, "alpha runs the queue on Kafka", scope="alpha")
    b = await add(store, "beta runs the queue on RabbitMQ", scope="beta")
    assert [m.id for m in await store.search("alpha", "queue", 5)] == [a]
    assert [m.id for m in await store.search("beta", "queue", 5)] == [b]


def match(row: int, bm25: float = -1.0, scope: str = "p") -> Match:
    return (bm25, -row, scope, 0.0)


def test_window_keeps_the_newest_matches_within_its_budget() -> None:
    matches = [match(1, -3.0), match(2, -1.0), match(3, -2.0)]
    window = new_window(matches, budget=3, changes=0, checked_to=3)
    assert [rowid(m) for m in window.ranked] == [1, 3, 2]
    grown = window.extended([match(4, -5.0), match(5, -0.5)], checked_to=7)
    assert [rowid(m) for m in grown.matches] == [3, 4, 5]
    assert [rowid(m) for m in grown.ranked] == [4, 3, 5]
    assert grown.checked_to == 7 and grown.appended == 2
    assert [rowid(m) for m in grown.best("p", 2)] == [4, 3]
    assert grown.extended([], checked_to=9).checked_to == 9
    assert grown.extended([], checked_to=6) is grown  # never back


def test_equal_scores_rank_the_newer_first() -> None:
    window = new_window([match(1), match(2), match(3, scope="q")], 10, changes=0, checked_to=3)
    assert [rowid(m) for m in window.best("p", 5)] == [2, 1]


def test_cache_drops_stale_windows() -> None:
    cache = WindowCache(max_windows=2, ttl_s=30.0)
    window = new_window([match(1)], budget=4, changes=0, checked_to=1)
    cache.put("a", window)
    assert cache.get("a", budget=4, changes=0) is window
    assert cache.get("a", budget=4, changes=1) is None  # a memory was deleted since
    cache.put("a", window)
    assert cache.get("a", budget=5, changes=0) is None  # the budget changed
    cache.put("a", window)
    cache.put("b", window)
    cache.put("c", window)
    assert len(cache) == 2 and cache.get("a", budget=4, changes=0) is None
    cache.put("d", window.extended([match(2), match(3)], 3))  # half the budget appended
    assert cache.get("d", budget=4, changes=0) is None
