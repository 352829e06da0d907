"""The PostgreSQL memory store's schema: append-only numbered migrations, and pgvector's column.

Migrations are recorded in `_memproxy_memory_migrations` and run once, in one transaction under
an advisory lock, by the first instance that finds one missing (the others wait on the lock and
then find them applied). Never edit a migration that has shipped: add the next one.

Every memory keeps its embedding as float32 bytes (`embedding`), whatever the server has, so a
server that gains or loses pgvector keeps every vector. When the server has the pgvector
extension (and this role may create it, or it exists), `embedding_v vector(384)` holds the same
vector and the server finds a scope's nearest memories; without it the gateway ranks the
scope's vectors itself (postgres_vectors.py). That column is not a migration: it is added on
start wherever the extension can be had, and filled from `embedding` in the background.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

MIGRATIONS_TABLE = "_memproxy_memory_migrations"
# Another constant than the spend store's (store/migrations.py): the two migrate independently.
PG_LOCK_KEY = 0x6D656D6D  # "memm"
TABLE = "memproxy_memories"

_M001 = (
    """CREATE TABLE memproxy_memories (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        text TEXT NOT NULL,
        user_text TEXT NOT NULL,
        assistant_text TEXT NOT NULL,
        client TEXT,
        note TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
        dedup TEXT,
        embedding BYTEA,
        embedded_seq BIGINT,
        tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
    )""",
    "CREATE INDEX memproxy_memories_scope_created ON memproxy_memories (scope, created_at, seq)",
    """CREATE UNIQUE INDEX memproxy_memories_dedup ON memproxy_memories (scope, dedup)
        WHERE dedup IS NOT NULL""",
    "CREATE INDEX memproxy_memories_tsv ON memproxy_memories USING GIN (tsv)",
    """CREATE INDEX memproxy_memories_unembedded ON memproxy_memories (seq)
        WHERE embedding IS NULL""",
    """CREATE INDEX memproxy_memories_embedded ON memproxy_memories (scope, embedded_seq)
        WHERE embedded_seq IS NOT NULL""",
    # The order in which vectors were stored, for a gateway that keeps a scope's vectors.
    "CREATE SEQUENCE memproxy_memories_embedded_seq",
    # How many memories were ever deleted (by any instance): kept vectors are dropped then.
    """CREATE TABLE memproxy_memory_changes (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        changes BIGINT NOT NULL
    )""",
    "INSERT INTO memproxy_memory_changes (id, changes) VALUES (1, 0)",
    """CREATE FUNCTION memproxy_memories_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE memproxy_memory_changes SET changes = changes + 1 WHERE id = 1;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER memproxy_memories_ad AFTER DELETE ON memproxy_memories
        FOR EACH STATEMENT EXECUTE FUNCTION memproxy_memories_deleted()""",
)


def m001_memories(cur: Any) -> None:
    """Memories with their parts, a generated full-text vector (GIN), the embedding as bytes,
    and the count of deletions."""
    for statement in _M001:
        cur.execute(statement)


def m002_scope_seq(cur: Any) -> None:
    """A scope's memories newest first (recall reads its newest window through it: the primary
    key would walk every other scope's newer rows too)."""
    cur.execute(
        "CREATE INDEX IF NOT EXISTS memproxy_memories_scope_seq ON memproxy_memories (scope, seq)"
    )


def m003_fact_of(cur: Any) -> None:
    """The facts drawn from a turn, by the turn's id (`memory.extract_model`): forgetting the
    turn forgets them without reading the scope's other memories."""
    cur.execute(
        "CREATE INDEX IF NOT EXISTS memproxy_memories_fact_of ON memproxy_memories "
        "(scope, (metadata->>'fact_of')) WHERE metadata ? 'fact_of'"
    )


_M004 = (
    """CREATE TABLE memproxy_scope_vectors (
        scope TEXT PRIMARY KEY,
        vectors BIGINT NOT NULL
    )""",
    # No write may slip between the count and the trigger (an instance of an earlier release
    # may be writing): held until the migration's transaction commits.
    "LOCK TABLE memproxy_memories IN SHARE ROW EXCLUSIVE MODE",
    """INSERT INTO memproxy_scope_vectors (scope, vectors)
        SELECT scope, count(*) FROM memproxy_memories WHERE embedded_seq IS NOT NULL
        GROUP BY scope""",
    """CREATE FUNCTION memproxy_scope_vectors_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        delta INTEGER := 0;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.embedded_seq IS NOT NULL THEN delta := 1; END IF;
        ELSIF TG_OP = 'DELETE' THEN
            IF OLD.embedded_seq IS NOT NULL THEN delta := -1; END IF;
        ELSIF OLD.embedded_seq IS NULL AND NEW.embedded_seq IS NOT NULL THEN
            delta := 1;
        ELSIF OLD.embedded_seq IS NOT NULL AND NEW.embedded_seq IS NULL THEN
            delta := -1;
        END IF;
        IF delta <> 0 THEN
            INSERT INTO memproxy_scope_vectors AS c (scope, vectors)
                VALUES (coalesce(NEW.scope, OLD.scope), delta)
                ON CONFLICT (scope) DO UPDATE SET vectors = c.vectors + delta;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER memproxy_memories_vectors_counted
        AFTER INSERT OR DELETE OR UPDATE OF embedded_seq ON memproxy_memories
        FOR EACH ROW EXECUTE FUNCTION memproxy_scope_vectors_counted()""",
)


def m004_scope_vector_counts(cur: Any) -> None:
    """Each scope's count of stored vectors, kept by a trigger in the same transaction as the
    rows: a gateway that keeps a scope's vectors (postgres_vectors.py) reads one row to know it
    has them all, where counting them read every entry of the scope's index (47 ms at 100k)."""
    for statement in _M004:
        cur.execute(statement)


Migration = Callable[[Any], None]
MIGRATIONS: tuple[Migration, ...] = (
    m001_memories,
    m002_scope_seq,
    m003_fact_of,
    m004_scope_vector_counts,
)


def migration_names() -> list[str]:
    return [m.__name__ for m in MIGRATIONS]


def migrate(conn: Any, upto: str | None = None) -> list[str]:
    """Apply the missing migrations (up to and including `upto`) on a psycopg connection;
    the names applied."""
    done: list[str] = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS _memproxy_memory_migrations "
            "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        cur.execute("SELECT name FROM _memproxy_memory_migrations")
        present = {row[0] for row in cur.fetchall()}
        for migration in MIGRATIONS:
            name = migration.__name__
            if name not in present:
                migration(cur)
                cur.execute(
                    "INSERT INTO _memproxy_memory_migrations (name, applied_at) VALUES (%s, %s)",
                    (name, time.time()),
                )
                done.append(name)
            if name == upto:
                break
    return done


def enable_pgvector(conn: Any) -> bool:
    """Add `embedding_v vector(384)` where the server has pgvector; False where it has not
    (not installed, or this role may not create the extension)."""
    import psycopg

    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cur.fetchone() is None:
            return False
        try:
            with conn.transaction():  # a savepoint: a refusal leaves the outer one usable
                cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error:
            return False
        cur.execute(
            "ALTER TABLE memproxy_memories ADD COLUMN IF NOT EXISTS embedding_v vector(384)"
        )
        # Kept in the row (the bytes copy goes out of line instead): a search reads every
        # vector of the scope, and a TOAST lookup for each would cost ten times the distance.
        cur.execute("ALTER TABLE memproxy_memories ALTER COLUMN embedding_v SET STORAGE PLAIN")
        cur.execute(
            "CREATE INDEX IF NOT EXISTS memproxy_memories_unvectored ON memproxy_memories (seq) "
            "WHERE embedding IS NOT NULL AND embedding_v IS NULL"
        )
    return True


def has_pgvector_column(conn: Any) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = %s "
            "AND column_name = 'embedding_v' AND table_schema = current_schema()",
            (TABLE,),
        )
        return cur.fetchone() is not None
