"""A scope's lexical candidates in PostgreSQL, with bounded work however large the scope.

A common word can match most of a 100k-memory project: ranking every match (or even sorting
them by age to keep the newest) costs hundreds of milliseconds, and the planner, which
underestimates how many rows a prefix term matches, reads them all through the GIN index. As in
the local store (local_search.py), only a bounded set is ranked, and freshness favours the
newest anyway: each term contributes its newest `PER_TERM` matches in the scope.

1. The scope's newest `WINDOW` memories are read newest first through (scope, seq), each tested
   against each term. A term with `PER_TERM` matches among them (a common one) has its newest
   matches there; so does every term when the window holds the whole scope.
2. The other terms (rare in the newest memories) are looked up through the GIN index, which
   finds all of a rare term's matches however old: their newest `RANK_WINDOW` matches.
3. The candidates are ranked by `ts_rank_cd` against the whole query, the best `limit` kept.

Each statement is planned for its own terms (never prepared): a generic plan, blind to how
many rows a term matches, walks the whole scope for a rare one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WINDOW = 2000
PER_TERM = 100
RANK_WINDOW = 400


def term_query(term: str) -> str | None:
    """One prefix term for to_tsquery('english', ...), letters and digits only (nothing else can
    reach the query's syntax), or None when nothing is left."""
    word = "".join(ch for ch in term if ch.isalnum())
    return f"{word}:*" if word else None


def tsquery(terms: Sequence[str]) -> str | None:
    """An OR of prefix terms for to_tsquery('english', ...), or None without any."""
    kept = [q for q in (term_query(t) for t in terms) if q is not None]
    return " | ".join(kept) if kept else None


# The newest seqs come from (scope, seq) alone, then the rows by seq. With `scope = x` the
# planner may rather walk the primary key backwards, through every newer row of the other
# scopes (40 ms where another project stored 40k memories since); `x <= scope <= x` (the same
# rows) ordered by (scope, seq) can only be read from the index. Only the number of terms varies
# the text (`{tests}`, `{queries}`): every term is a parameter. The window's rows come back
# whether they match or not: a filter on them would let the planner read every match of the
# terms through the GIN index instead (80 ms for a common word).
_WINDOW_SQL = """
SELECT m.seq, m.scope = %(scope)s, {tests}
FROM (SELECT {queries}) AS q,
    (SELECT seq FROM memproxy_memories WHERE scope >= %(scope)s AND scope <= %(scope)s
        ORDER BY scope DESC, seq DESC LIMIT %(window)s) AS newest
    JOIN memproxy_memories AS m ON m.seq = newest.seq
ORDER BY m.seq DESC
"""


def _window_sql(n: int) -> str:
    tests = ", ".join(f"m.tsv @@ q.t{i}" for i in range(n))
    queries = ", ".join(f"to_tsquery('english', %(t{i})s) AS t{i}" for i in range(n))
    return _WINDOW_SQL.format(tests=tests, queries=queries)


# Materialized without an order: the planner reads a rare term's matches through the GIN index
# (given ORDER BY seq LIMIT, it would walk the primary key through the whole table instead).
_RARE_SQL = """
WITH matches AS MATERIALIZED (
    SELECT seq FROM memproxy_memories, to_tsquery('english', %s) AS q
    WHERE tsv @@ q AND scope = %s
)
SELECT seq FROM matches ORDER BY seq DESC LIMIT %s
"""
_RANK_SQL = """
SELECT seq, -ts_rank_cd(tsv, q) AS score FROM memproxy_memories, to_tsquery('english', %s) AS q
WHERE scope = %s AND seq = ANY(%s) ORDER BY score, seq DESC LIMIT %s
"""


def lexical_candidates(cur: Any, scope: str, terms: Sequence[str], limit: int) -> dict[int, float]:
    """The best `limit` memories (seq) of `scope` by text rank among each term's newest
    `PER_TERM` matches, with their negated rank (lower is better)."""
    queries = [q for q in (term_query(t) for t in terms) if q is not None]
    if not queries:
        return {}
    every = " | ".join(queries)
    params: dict[str, object] = {f"t{i}": q for i, q in enumerate(queries)}
    params.update(scope=scope, window=WINDOW)
    cur.execute(_window_sql(len(queries)), params, prepare=False)
    rows = cur.fetchall()
    whole_scope = len(rows) < WINDOW  # every memory of the scope was tested
    found: list[list[int]] = [[] for _ in queries]
    for row in rows:
        for i in range(len(queries)):
            if row[1] and row[2 + i] and len(found[i]) < PER_TERM:
                found[i].append(int(row[0]))
    candidates = {seq for seqs in found for seq in seqs}
    rare = [q for q, seqs in zip(queries, found, strict=True) if len(seqs) < PER_TERM]
    if rare and not whole_scope:
        cur.execute(_RARE_SQL, (" | ".join(rare), scope, RANK_WINDOW), prepare=False)
        candidates.update(int(seq) for (seq,) in cur.fetchall())
    if not candidates:
        return {}
    cur.execute(_RANK_SQL, (every, scope, sorted(candidates), limit), prepare=False)
    return {int(seq): float(score) for seq, score in cur.fetchall()}
