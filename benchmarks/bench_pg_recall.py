"""Recall latency of the PostgreSQL (team) memory backend, with and without pgvector.

Fills `memproxy_memories` of an empty database with deterministic turns and random unit vectors
(search cost does not depend on the values; embedding the turns with the model would take
hours), then times recalls of one project with the question's vector already computed (the
query's embedding is the same as the local backend's: bench_recall.py). Prints, per size, the
wall-clock p50/p99 of a recall (the server works in its own process, so the gateway's CPU time
alone would hide it) and the gateway's CPU time per recall. Other projects hold as many memories.
Usage: python benchmarks/bench_pg_recall.py --database-url postgresql://... [--sizes 1000,10000]
    [--queries 200] [--no-pgvector] [--vacuum]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import psycopg

from memproxy_cli.memory.embeddings import DIM, Vectors
from memproxy_cli.memory.postgres import PostgresMemoryBackend, libpq_url, vector_literal
from memproxy_cli.memory.postgres_vectors import KeptVectors

WORDS = [
    "database",
    "cache",
    "login",
    "pipeline",
    "billing",
    "search",
    "mobile",
    "gateway",
    "queue",
    "frontend",
    "deploy",
    "test",
    "config",
    "metrics",
    "migration",
    "index",
    "retry",
    "timeout",
    "schema",
    "worker",
    "token",
    "session",
    "cluster",
    "backup",
]
QUESTIONS = (
    "which database does the billing service use?",
    "how do we deploy the frontend?",
    "what timeout does the gateway retry with?",
    "where is the backup of the cluster kept?",
)


class _Measured(PostgresMemoryBackend):
    """The backend with a fixed query vector in place of the model."""

    def __init__(self, url: str, pgvector: bool, vector: Vectors) -> None:
        super().__init__(url, pgvector=pgvector)
        self._vector = vector
        self._kept = KeptVectors()

    def _query_vector(self, query: str) -> Vectors | None:
        return self._vector


def fill(
    url: str, scopes: list[str], start: int, per_scope: int, pgvector: bool, rng: random.Random
) -> int:
    """Add `per_scope` memories to each scope, numbered from `start`; the next number."""
    columns = "id, scope, text, user_text, assistant_text, created_at, embedding, embedded_seq"
    if pgvector:
        columns += ", embedding_v"
    with psycopg.connect(libpq_url(url)) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY memproxy_memories ({columns}) FROM STDIN") as copy:
            n = start
            for scope in scopes:
                vectors = np.random.default_rng(start).standard_normal((per_scope, DIM))
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for vector in vectors.astype(np.float32):
                    n += 1
                    user = " ".join(rng.choice(WORDS) for _ in range(12))
                    row: list[object] = [f"m{n}", scope, user + " ok", user, "ok"]
                    row += [time.time() - n, vector.tobytes(), n]
                    if pgvector:
                        row.append(vector_literal(vector))
                    copy.write_row(row)
        cur.execute("SELECT setval('memproxy_memories_embedded_seq', %s)", (n,))
        conn.commit()
        conn.execute("ANALYZE memproxy_memories")
        conn.commit()
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-pgvector", action="store_true")
    parser.add_argument(
        "--vacuum",
        action="store_true",
        help="VACUUM after each fill, as autovacuum does in time (else every row is fresh)",
    )
    args = parser.parse_args()
    rng = random.Random(7)
    query = np.array([rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)
    query /= np.linalg.norm(query)
    store = _Measured(args.database_url, not args.no_pgvector, query)
    mode = "pgvector" if store.uses_pgvector else "gateway-ranked vectors"
    done, numbered = 0, 0
    for size in (int(s) for s in args.sizes.split(",")):
        scopes = ["p", "other"]
        numbered = fill(args.database_url, scopes, numbered, size - done, store.uses_pgvector, rng)
        done = size
        if args.vacuum:
            with psycopg.connect(libpq_url(args.database_url), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE memproxy_memories")
        store.search_sync("p", QUESTIONS[0], 5)  # the scope's vectors loaded once
        walls, cpus = [], []
        for i in range(args.queries):
            started, cpu = time.perf_counter(), time.thread_time()
            found = store.search_sync("p", QUESTIONS[i % len(QUESTIONS)], 10)
            cpus.append((time.thread_time() - cpu) * 1000)
            walls.append((time.perf_counter() - started) * 1000)
            assert found and all(m.scope == "p" for m in found)
        walls.sort()
        p99 = walls[int(len(walls) * 0.99) - 1]
        print(
            f"{mode}: {size} memories in the project (x2 in the store): recall p50 "
            f"{statistics.median(walls):.1f} ms, p99 {p99:.1f} ms wall; gateway CPU "
            f"{statistics.median(cpus):.1f} ms per recall"
        )
    store.close_sync()


if __name__ == "__main__":
    main()
