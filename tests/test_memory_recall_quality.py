"""Recall at a realistic size: the relevant memory wins among thousands of similar distractors,
also after kept windows were topped up with turns stored since (deterministic store)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend

NOW = 2_000_000_000.0
DAY = 86400.0
SUBJECTS = ("the database", "the cache", "the billing service", "the login flow", "the CI job")
VERBS = ("uses", "moved to", "depends on", "is tested with", "talks to")
TECH = ("PostgreSQL", "Redis", "Kafka", "Django", "Terraform", "nginx", "Celery", "Grafana")
EXTRAS = ("after the outage", "to cut costs", "behind a feature flag", "since March", "for now")
FACT = "which payment provider do we use? Billing charges cards through Adyen since the audit."


def distractors(rng: random.Random, n: int, newest_age_days: float) -> list[Turn]:
    turns = []
    for i in range(n):
        subject, verb, tech, extra = (rng.choice(x) for x in (SUBJECTS, VERBS, TECH, EXTRAS))
        turns.append(
            Turn(
                user=f"note {i}: {subject} {verb} {tech} {extra}",
                assistant=f"Understood, {subject} {verb} {tech}.",
                created_at=NOW - DAY * (newest_age_days + rng.uniform(0, 300)),
            )
        )
    return turns


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalMemoryBackend]:
    rng = random.Random(11)
    backend = LocalMemoryBackend(tmp_path / "memory.sqlite3")
    backend.add_many_sync("p", distractors(rng, 2500, newest_age_days=30))
    backend.add_sync("p", Turn(user=FACT, assistant="Noted.", created_at=NOW - 200 * DAY))
    backend.add_many_sync("p", distractors(rng, 2500, newest_age_days=0))
    backend.add_many_sync("other", [Turn(user=FACT, assistant="Other project.", created_at=NOW)])
    yield backend
    backend.close_sync()


def top(store: LocalMemoryBackend, query: str, k: int = 5) -> list[str]:
    return [m.text for m in store.search_sync("p", query, k, now=NOW)]


def test_the_relevant_memory_wins_among_thousands_of_distractors(
    store: LocalMemoryBackend,
) -> None:
    for query in (
        "what payment provider does billing use?",
        "do we charge cards with Adyen or Stripe?",
        "which provider handles payments for the billing service",
    ):
        found = top(store, query)
        assert found and found[0].startswith(f"User: {FACT}"), (query, found[:2])


def test_it_still_wins_after_newer_turns_are_stored(
    store: LocalMemoryBackend, tmp_path: Path
) -> None:
    query = "which provider handles payments for the billing service"
    assert top(store, query)[0].startswith(f"User: {FACT}")
    assert top(store, "billing service kafka")
    rng = random.Random(12)
    store.add_many_sync("p", distractors(rng, 300, newest_age_days=0))
    assert top(store, query)[0].startswith(f"User: {FACT}")
    # A fresh, weaker match ranks as a fresh search ranks it (recency may lift it).
    spinner = Turn(user="the payment page shows a spinner", assistant="ok", created_at=NOW)
    store.add_sync("p", spinner)
    fresh = LocalMemoryBackend(tmp_path / "memory.sqlite3")
    try:
        for q in (query, "billing service kafka", "payment page"):
            assert top(store, q, 10) == [m.text for m in fresh.search_sync("p", q, 10, now=NOW)]
    finally:
        fresh.close_sync()
