"""The fusion of one recall's candidates: coverage of the question's words, the statement words
that make two memories one subject, and newest wins; and the sign-distance weights."""

from __future__ import annotations

import re

import numpy as np
import pytest

from memproxy_cli.memory.embeddings import DIM
from memproxy_cli.memory.local_search import (
    SAME_SUBJECT,
    _Candidate,
    _statement_key,
    coverage,
    newest_wins,
)
from memproxy_cli.memory.scope_vectors import _larger_half

WORD = re.compile(r"[^\W_]+", re.UNICODE)


@pytest.mark.parametrize(
    ("terms", "text", "share"),
    [
        (["postgres"], "We run PostgreSQL 16.", 1.0),  # a prefix of a word
        (["use"], "because it is cheaper", 0.0),  # inside a word: no
        (["use"], "my_use_case", 1.0),  # the underscore separates words
        (["ci"], "the circle of life", 0.0),  # a short term is a whole word
        (["ci"], "The CI runs nightly; ci.", 1.0),
        (["ci"], "ci", 1.0),
        (["17"], "note 171 and x17", 0.0),
        (["17"], "port (17)", 1.0),
        (["über", "port"], "Über alles, Port 5433", 1.0),
        (["ß"], "straße", 0.0),
        (["straße", "db"], "Straße db", 1.0),
        (["deploy", "port", "staging", "x"], "the staging deploy", 0.5),
        ([], "anything", 0.0),
    ],
)
def test_coverage_counts_terms_found_at_the_start_of_a_word(
    terms: list[str], text: str, share: float
) -> None:
    assert coverage(terms, text) == share


@pytest.mark.parametrize(
    "user",
    [
        "The staging DB moved to port 6543.",
        "  the staging   db, moved -- to PORT 6543!!",
        "snake_case_words and C++ / C#",
        "tabs\tand\nnewlines\r\n",
        "",
        "...",
        "Über die Straße: İstanbul ² ½",  # not ASCII: the regex itself
        "mixed ascii and ü",
    ],
)
def test_a_statement_key_is_its_lowercased_words(user: str) -> None:
    assert _statement_key(user) == " ".join(WORD.findall(user.lower()))


def test_ascii_and_unicode_spellings_of_the_same_words_share_a_key() -> None:
    assert _statement_key("The DB, moved!") == _statement_key("the db moved\u00a0")
    assert _statement_key("Port 5433") != _statement_key("Port 6543")


def candidate(rowid: int, user: str, at: float, score: float) -> _Candidate:
    return _Candidate(rowid, (f"m{rowid}", "p", user, at, "{}"), user, "", score)


def unit(*components: float) -> np.ndarray:
    vector = np.array(components, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_newest_wins_groups_by_vector_and_by_words_and_keeps_the_best_score() -> None:
    old = candidate(1, "staging database on port 5433", 10.0, 0.9)
    new = candidate(2, "staging database moved to 6543", 20.0, 0.4)
    other = candidate(3, "the cat is called Biscuit", 15.0, 0.5)
    repeat = candidate(4, "The cat is called biscuit!", 5.0, 0.8)  # same words, no vector
    vectors = {1: unit(1, 0.1, 0), 2: unit(1, 0, 0.1), 3: unit(0, 1, 0)}
    assert float(vectors[1] @ vectors[2]) >= SAME_SUBJECT
    shown = newest_wins([old, new, other, repeat], vectors)
    assert [(c.rowid, c.score) for c in shown] == [(2, 0.9), (3, 0.8)]


def test_facts_of_one_turn_never_update_one_another() -> None:
    first = candidate(1, "the API listens on 8080", 10.0, 0.7)
    second = candidate(2, "the API is written in Go", 10.0, 0.6)  # the same time
    vectors = {1: unit(1, 0.1, 0), 2: unit(1, 0, 0.1)}
    shown = newest_wins([first, second], vectors)
    assert sorted(c.rowid for c in shown) == [1, 2]


def test_a_candidate_close_to_two_subjects_joins_the_one_with_the_newest_head() -> None:
    newest = candidate(1, "alpha", 30.0, 0.1)
    middle = candidate(2, "beta", 20.0, 0.2)
    oldest = candidate(3, "gamma", 10.0, 0.9)
    # 3 is close to both 1 and 2, which are not close to each other.
    vectors = {1: unit(1, 0, 0), 2: unit(0, 1, 0), 3: unit(1, 1, 0)}
    assert float(vectors[1] @ vectors[3]) >= SAME_SUBJECT
    assert float(vectors[2] @ vectors[3]) >= SAME_SUBJECT
    shown = newest_wins([oldest, middle, newest], vectors)
    assert [(c.rowid, c.score) for c in shown] == [(1, 0.9), (2, 0.2)]


def test_words_name_an_older_group_than_a_close_vector_would() -> None:
    first = candidate(1, "deploy port", 30.0, 0.1)  # a group of its own
    second = candidate(2, "something else", 20.0, 0.2)
    third = candidate(3, "Deploy port.", 10.0, 0.9)  # the words of 1, the vector of 2
    vectors = {1: unit(1, 0, 0), 2: unit(0, 1, 0), 3: unit(0, 1, 0.1)}
    shown = newest_wins([first, second, third], vectors)
    assert [(c.rowid, c.score) for c in shown] == [(1, 0.9), (2, 0.2)]


def test_the_larger_half_is_what_the_median_gives() -> None:
    rng = np.random.default_rng(4)
    queries = list(rng.standard_normal((50, DIM)).astype(np.float32))
    tied = np.ones(DIM, dtype=np.float32)
    tied[: DIM // 3] = 0.5
    queries += [tied, np.zeros(DIM, dtype=np.float32)]
    for query in queries:
        magnitude = np.abs(query)
        assert np.array_equal(_larger_half(query), magnitude >= np.median(magnitude))
