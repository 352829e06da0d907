"""Recall latency of the local memory backend at 1k, 10k and 100k memories in one project.

Fills a temporary store with deterministic, varied turns, then times natural-language questions
through the async API the gateway uses (executor hop included). Prints p50/p99 per size.
With --hybrid, every memory also gets a vector (random unit vectors: embedding 100k turns with
the model takes an hour of CPU, and search cost does not depend on the values), the model is
loaded, and the figures are CPU time per call on a reader thread (the machine is shared): a
whole recall of a question never asked before (its embedding included), the same question
again (its vector kept), then each stage apart (embedding, full text, vector candidates, rows
and exact cosines; the rest of a recall is fusion and newest-wins), and the process's RSS
with the model and every vector loaded.
The questions are plain ones made of the stored turns' words, each asked once (`plain_question`):
their rarest word matches thousands of memories at 100k. With --numbered, each of ten questions
ends in a number instead (`(17)`, the benchmark's questions before), which is rarer than their
words and makes the full text cheap. With --compare-fts5-bm25, the full-text stage is also timed
with FTS5's bm25() over the same window (the design before fts_bm25.py), alternating with it.
Usage: python benchmarks/bench_recall.py [--sizes 1000,10000,100000] [--queries 300] [--hybrid]
           [--numbered] [--compare-fts5-bm25]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend

T = TypeVar("T")

SUBJECTS = (
    "the database",
    "the cache",
    "the login flow",
    "the CI pipeline",
    "the billing service",
    "the search index",
    "the mobile app",
    "the API gateway",
    "the job queue",
    "the frontend",
    "the deploy script",
    "the test suite",
    "the config loader",
    "the metrics dashboard",
)
TECH = (
    "PostgreSQL",
    "Redis",
    "Kafka",
    "SQLite",
    "Svelte",
    "React",
    "Django",
    "FastAPI",
    "Terraform",
    "Kubernetes",
    "nginx",
    "Celery",
    "GraphQL",
    "gRPC",
    "Prometheus",
    "Grafana",
    "Rust",
    "Go",
)
VERBS = ("uses", "moved to", "depends on", "was rewritten in", "talks to", "is tested with")
EXTRAS = (
    "because latency was too high",
    "after the outage in March",
    "to cut the cloud bill",
    "since the team prefers it",
    "for the new customers in Europe",
    "until the migration ends",
    "with a retry budget of twenty percent",
    "behind a feature flag",
    "on every pull request",
)
QUESTIONS = (
    "what database does this project use?",
    "which cache do we run?",
    "how is the login flow built?",
    "what does the CI pipeline depend on?",
    "why did we move to Kafka?",
    "where do metrics go?",
    "which framework is the frontend written in?",
    "what happened after the outage in March?",
    "how do deploys work?",
    "is there a feature flag?",
)

TEMPLATES = (
    "what does {subject} use?",
    "why was {subject} moved to {tech}?",
    "does {subject} still depend on {tech}?",
    "how is {subject} tested with {tech}?",
    "what did we decide about {subject} and {tech}?",
)


def plain_question(i: int) -> str:
    """The `i`-th of 1,260 distinct questions made of the stored turns' words."""
    template = TEMPLATES[i % len(TEMPLATES)]
    subject = SUBJECTS[(i // len(TEMPLATES)) % len(SUBJECTS)]
    tech = TECH[(i // (len(TEMPLATES) * len(SUBJECTS))) % len(TECH)]
    return template.format(subject=subject.removeprefix("the "), tech=tech)


def question_of(i: int, numbered: bool) -> str:
    """A question never asked before in a run: plain, or one of `QUESTIONS` ending in `(i)`."""
    if numbered:
        return f"{QUESTIONS[i % len(QUESTIONS)]} ({i})"
    return plain_question(i)


def turn(rng: random.Random, i: int, now: float) -> Turn:
    subject, verb, tech, extra = (rng.choice(x) for x in (SUBJECTS, VERBS, TECH, EXTRAS))
    user = f"note {i}: {subject} {verb} {tech} {extra}."
    answer = (
        f"Understood, {subject} {verb} {tech}. I will keep that in mind ({rng.randint(1, 99)})."
    )
    return Turn(user=user, assistant=answer, created_at=now - rng.uniform(0, 365 * 86400))


def fill(store: LocalMemoryBackend, size: int, seed: int = 7) -> None:
    rng, now = random.Random(seed), time.time()
    batch = 5000
    for start in range(0, size, batch):
        turns = [turn(rng, i, now) for i in range(start, min(size, start + batch))]
        store.add_many_sync("bench", turns)
        store.add_many_sync("other-project", turns[: len(turns) // 10])


async def measure(store: LocalMemoryBackend, queries: int) -> list[float]:
    await store.search("bench", QUESTIONS[0], 5)  # warm the page cache
    times = []
    for i in range(queries):
        t0 = time.perf_counter()
        await store.search("bench", QUESTIONS[i % len(QUESTIONS)], 5)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def report(size: int, times: list[float], fill_s: float) -> None:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{size:>7} memories  p50 {statistics.median(ordered):6.2f} ms  p99 {p99:6.2f} ms"
        f"  (fill {fill_s:5.1f} s, {len(times)} queries)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--hybrid", action="store_true", help="with vectors and the model")
    parser.add_argument("--numbered", action="store_true", help="questions ending in (i)")
    parser.add_argument(
        "--compare-fts5-bm25", action="store_true", help="also time FTS5's bm25() (before)"
    )
    args = parser.parse_args()
    if args.hybrid:
        for size in (int(s) for s in args.sizes.split(",")):
            hybrid(size, args.queries, args.numbered, args.compare_fts5_bm25)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            sync_store = LocalMemoryBackend(Path(tmp) / "memory.sqlite3")
            t0 = time.perf_counter()
            fill(sync_store, size)
            fill_s = time.perf_counter() - t0
            sync_store.close_sync()
            store = LocalMemoryBackend(Path(tmp) / "memory.sqlite3")
            times = asyncio.run(_measure_and_close(store, args.queries))
            report(size, times, fill_s)


async def _measure_and_close(store: LocalMemoryBackend, queries: int) -> list[float]:
    try:
        return await measure(store, queries)
    finally:
        await store.close()


def add_random_vectors(path: Path) -> None:
    import importlib
    import sqlite3

    from memproxy_cli.memory.embeddings import DIM  # first: it sets numpy's BLAS threads

    np = importlib.import_module("numpy")

    conn = sqlite3.connect(path, isolation_level=None)
    rowids = [r[0] for r in conn.execute("SELECT rowid FROM memories")]
    vectors = np.random.default_rng(3).standard_normal((len(rowids), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    conn.execute("BEGIN")
    sql = "UPDATE memories SET embedding = ? WHERE rowid = ?"
    conn.executemany(sql, ((vectors[i].tobytes(), r) for i, r in enumerate(rowids)))
    conn.execute("COMMIT")
    conn.close()


def percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):6.2f} ms  p99 {p99:6.2f} ms"


def rss_mb() -> float:
    """The process's resident set now (anonymous and file-backed pages), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`fn(*args)` and its CPU ms on this thread."""
    t0 = time.thread_time()
    result = fn(*args)
    return result, (time.thread_time() - t0) * 1000


# The full-text stage before fts_bm25.py: FTS5's bm25() over the scope's newest matches.
_FTS5_BM25_SQL = """
SELECT rowid, score FROM (
    SELECT memories_fts.rowid AS rowid, bm25(memories_fts) AS score
    FROM memories_fts CROSS JOIN memories AS m ON m.rowid = memories_fts.rowid
    WHERE memories_fts MATCH ? AND m.scope = ? ORDER BY memories_fts.rowid DESC LIMIT ?
) ORDER BY score LIMIT ?
"""


def fts5_bm25_lexical(search: Any, conn: Any, scope: str, terms: list[str]) -> dict[int, float]:
    """`LocalSearch._lexical` as it was with FTS5's bm25(): the same terms, the same window."""
    from memproxy_cli.memory import local_search
    from memproxy_cli.memory.fts_query import match_expression

    chosen: list[str] = []
    total = 0
    for hits, term in sorted((search._term_hits(conn, t), t) for t in terms):
        if not hits or (chosen and total + hits > local_search.MATCH_BUDGET):
            continue
        chosen.append(term)
        total += hits
    expression = match_expression(chosen)
    if expression is None:
        return {}
    window, limit = local_search.RANK_WINDOW, local_search.CANDIDATES
    return dict(conn.execute(_FTS5_BM25_SQL, (expression, scope, window, limit)))


def _with_fts5_bm25(store: LocalMemoryBackend, question: str) -> float:
    """CPU ms of a recall of `question` with `fts5_bm25_lexical` as its full-text stage."""
    search = store._search
    setattr(search, "_lexical", lambda *args: fts5_bm25_lexical(search, *args))  # noqa: B010
    try:
        return timed(store.search_sync, "bench", question, 5)[1]
    finally:
        delattr(search, "_lexical")


def recall_figures(
    store: LocalMemoryBackend, queries: int, numbered: bool = False, compare: bool = False
) -> dict[str, list[float]]:
    """CPU ms per recall and per stage, on a reader thread with its own connection, as the
    gateway's recall runs (the executor hop itself is not counted)."""
    import json

    from memproxy_cli.memory import local_search
    from memproxy_cli.memory.fts_query import query_terms

    figures: dict[str, list[float]] = {}

    def add(name: str, ms: float) -> None:
        figures.setdefault(name, []).append(ms)

    def run() -> None:
        conn = store._connection(reader=True)
        index, search, model = store._index, store._search, store._model
        assert index is not None and model is not None
        for q in QUESTIONS:
            store.search_sync("bench", q, 5)  # warm: pages, term counts; these are now kept
        for i in range(queries):
            question = question_of(i, numbered)  # never asked before
            add("recall, new question", timed(store.search_sync, "bench", question, 5)[1])
            again = timed(store.search_sync, "bench", question, 5)[1]
            if compare:  # the same recall with the full text as it was, alternately first
                with_bm25 = _with_fts5_bm25(store, question)
                if i % 2:
                    add("recall asked again, FTS5 bm25()", with_bm25)
                    add(
                        "recall, question asked again",
                        timed(store.search_sync, "bench", question, 5)[1],
                    )
                else:
                    add("recall, question asked again", again)
                    add("recall asked again, FTS5 bm25()", with_bm25)
            else:
                add("recall, question asked again", again)
            vector, ms = timed(model.encode_query, f"{question}.")
            add("  embed the question", ms)
            conn.execute("BEGIN")
            try:
                terms = query_terms(question)
                args = (search, conn, "bench", terms)
                if compare and i % 2:
                    add("  full text, FTS5 bm25()", timed(fts5_bm25_lexical, *args)[1])
                lexical, ms = timed(search._lexical, conn, "bench", terms)
                add("  full text (BM25)", ms)
                if compare and not i % 2:  # alternately before and after
                    add("  full text, FTS5 bm25()", timed(fts5_bm25_lexical, *args)[1])
                dense, ms = timed(index.top, "bench", vector, local_search.CANDIDATES)
                add("  vector candidates", ms)
                t0 = time.thread_time()
                dense = local_search.worth_reading(dense or {}, lexical)
                wanted = json.dumps(sorted(set(lexical) | set(dense)))
                found = conn.execute(local_search._ROWS_SQL, (wanted, "bench")).fetchall()
                local_search.exact_cosines(found, vector, dict(dense))
                add("  rows + exact cosines", (time.thread_time() - t0) * 1000)
            finally:
                conn.execute("ROLLBACK")

    store._reader.submit(run).result()
    return figures


def hybrid(size: int, queries: int, numbered: bool = False, compare: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memory.sqlite3"
        sync_store = LocalMemoryBackend(path)
        fill(sync_store, size)
        sync_store.close_sync()
        add_random_vectors(path)
        store = LocalMemoryBackend(path, embed=True)
        try:
            store.wait_embedded_sync()
            store.wait_vectors_loaded_sync("bench")
            figures = recall_figures(store, queries, numbered, compare)
            rss = rss_mb()
        finally:
            store.shutdown_sync()
    kind = "numbered" if numbered else "plain"
    print(
        f"{size:>7} memories in the project (+10% in another), {queries} {kind} questions,"
        " CPU per call:"
    )
    for name, times in figures.items():
        print(f"    {name:32} {percentiles(times)}")
    print(f"    RSS with the model and the project's vectors loaded: {rss:.0f} MB")


if __name__ == "__main__":
    main()
