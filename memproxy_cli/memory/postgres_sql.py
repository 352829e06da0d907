"""The SQL of team memory (postgres.py), and the URL forms it connects with."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from memproxy_cli.memory.embeddings import Vectors

INSERT_SQL = """
INSERT INTO memproxy_memories (id, scope, text, user_text, assistant_text, client, note,
    created_at, metadata, dedup, embedding, embedded_seq)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
    CASE WHEN %s THEN nextval('memproxy_memories_embedded_seq') END)
ON CONFLICT (scope, dedup) WHERE dedup IS NOT NULL DO UPDATE SET
    created_at = greatest(memproxy_memories.created_at, excluded.created_at),
    metadata = jsonb_set(memproxy_memories.metadata, '{repeats}',
        to_jsonb(coalesce((memproxy_memories.metadata->>'repeats')::int, 0) + 1))
RETURNING id, seq
"""
# The facts drawn from a turn name it (memory/extract.py); forgetting the turn forgets them.
FORGET_FACTS_SQL = (
    "DELETE FROM memproxy_memories WHERE scope = %s AND metadata ? 'fact_of' "
    "AND metadata->>'fact_of' = %s"
)
VECTOR_SQL = "UPDATE memproxy_memories SET embedding_v = %s::vector WHERE seq = %s"
DENSE_SQL = """
SELECT seq, -(embedding_v <#> %s::vector) FROM memproxy_memories
WHERE scope = %s AND embedding_v IS NOT NULL ORDER BY embedding_v <#> %s::vector LIMIT %s
"""
ROWS_SQL = """
SELECT seq, id, scope, text, created_at, metadata::text, user_text, assistant_text, embedding
FROM memproxy_memories WHERE scope = %s AND seq = ANY(%s)
"""
LIST_SQL = """
SELECT id, scope, text, created_at, metadata::text FROM memproxy_memories WHERE scope = %s
ORDER BY created_at DESC, seq DESC LIMIT %s OFFSET %s
"""
EXPORT_SQL = """
SELECT id, scope, text, created_at, metadata::text FROM memproxy_memories WHERE scope = %s
ORDER BY created_at, seq
"""
UNEMBEDDED_SQL = """
SELECT seq, text, user_text, assistant_text, scope FROM memproxy_memories
WHERE embedding IS NULL ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED
"""
UNVECTORED_SQL = """
SELECT seq, embedding FROM memproxy_memories
WHERE embedding IS NOT NULL AND embedding_v IS NULL ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED
"""
STORE_VECTOR_SQL = """
UPDATE memproxy_memories SET embedding = %s,
    embedded_seq = nextval('memproxy_memories_embedded_seq') WHERE seq = %s
"""


def libpq_url(database_url: str) -> str:
    """The URL psycopg takes: SQLAlchemy's `+psycopg` driver suffix removed."""
    for prefix in ("postgresql+psycopg://", "postgres+psycopg://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url[len(prefix) :]
    return database_url


def database_identity(url: str) -> str:
    """Which database `url` names (host, port, database; never the user or a password)."""
    parts = urlsplit(url)
    where = f"{parts.hostname or ''}:{parts.port or 5432}{parts.path}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def vector_literal(vector: Vectors) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(f"{float(x):.8g}" for x in vector) + "]"
