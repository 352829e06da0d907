"""Append-only numbered migrations, recorded in `_memproxy_migrations`, run once under a lock.

Never edit a migration that has shipped: add the next one. Each function receives a connection
inside the migration transaction and uses SQLAlchemy core DDL (identifiers only, no values).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData, Table
    from sqlalchemy.engine import Engine

MIGRATIONS_TABLE = "_memproxy_migrations"
# Any constant shared by every memproxy instance on one PostgreSQL server.
PG_LOCK_KEY = 0x6D656D70  # "memp"


def m001_initial(conn: Connection) -> None:
    """The request log and the daily aggregates."""
    from sqlalchemy import (
        JSON,
        Boolean,
        Column,
        Float,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
    )

    md = MetaData()
    Table(
        "request_log",
        md,
        Column("id", Integer, primary_key=True),
        Column("request_id", String(128), nullable=False, unique=True),
        Column("started_at", Float, nullable=False),
        Column("ended_at", Float),
        Column("project", String(200)),
        Column("user_id", String(200)),
        Column("client", String(100)),
        Column("client_version", String(100)),
        Column("endpoint", String(200), nullable=False),
        Column("model", String(200)),
        Column("provider", String(100)),
        Column("stream", Boolean, nullable=False),
        Column("status", String(40), nullable=False),
        Column("http_status", Integer),
        Column("prompt_tokens", Integer),
        Column("completion_tokens", Integer),
        Column("cache_read_tokens", Integer),
        Column("cache_write_tokens", Integer),
        Column("cost_usd", Float),
        Column("latency_ms", Float),
        Column("ttft_ms", Float),
        Column("overhead_ms", Float),
        Column("memories_injected", Integer, nullable=False),
        Column("error", Text),
        Column("extra", JSON),
        Index("ix_request_log_started_at", "started_at"),
        Index("ix_request_log_project", "project"),
        Index("ix_request_log_model", "model"),
        Index("ix_request_log_status", "status"),
    )
    Table(
        "daily_spend",
        md,
        Column("id", Integer, primary_key=True),
        Column("day", String(10), nullable=False),
        Column("project", String(200), nullable=False),
        Column("model", String(200), nullable=False),
        *(Column(name, Integer, nullable=False) for name in _COUNTERS),
        Column("cost_usd", Float, nullable=False),
        UniqueConstraint("day", "project", "model", name="uq_daily_spend_key"),
    )
    md.create_all(conn)


_COUNTERS = (
    "requests",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


def m002_client_identity(conn: Connection) -> None:
    """Which client instance, session and trace a request belongs to."""
    from sqlalchemy import Column, Index, MetaData, String, Table

    # Literal DDL (the same on SQLite and PostgreSQL): no SQL is ever built by formatting.
    conn.exec_driver_sql("ALTER TABLE request_log ADD COLUMN client_instance VARCHAR(200)")
    conn.exec_driver_sql("ALTER TABLE request_log ADD COLUMN client_session VARCHAR(200)")
    conn.exec_driver_sql("ALTER TABLE request_log ADD COLUMN trace_id VARCHAR(64)")
    table = Table("request_log", MetaData(), Column("trace_id", String(64)))
    Index("ix_request_log_trace_id", table.c.trace_id).create(conn)


def m003_no_trace_id_index(conn: Connection) -> None:
    """Trace ids are random: indexing them cost every insert a random page write, and nothing
    looks rows up by trace id (a trace backend does)."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_request_log_trace_id")


# Secondary indexes of the request log that no query of SQLite's can use (see m004).
SQLITE_UNUSED_INDEXES = (
    "ix_request_log_started_at",
    "ix_request_log_project",
    "ix_request_log_model",
    "ix_request_log_status",
)


def m004_sqlite_unused_indexes(conn: Connection) -> None:
    """SQLite: drop the indexes on started_at, project, model and status.

    The request log is read newest first by rowid with optional `? IS NULL OR col = ?` filters
    (store/queries.py), which SQLite's planner never answers from those indexes (EXPLAIN QUERY
    PLAN: a scan by rowid), yet every insert updated all four: a third of the spend writer's
    CPU per row. PostgreSQL keeps them: its per-value plans can use them for a filter.
    """
    if conn.dialect.name != "sqlite":
        return
    # Literal DDL, one statement per name of SQLITE_UNUSED_INDEXES (no SQL built by formatting).
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_request_log_started_at")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_request_log_project")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_request_log_model")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_request_log_status")


Migration = Callable[["Connection"], None]
MIGRATIONS: tuple[Migration, ...] = (
    m001_initial,
    m002_client_identity,
    m003_no_trace_id_index,
    m004_sqlite_unused_indexes,
)


def migration_names() -> list[str]:
    return [m.__name__ for m in MIGRATIONS]


def _migrations_table(md: MetaData) -> Table:
    from sqlalchemy import Column, Float, String, Table

    return Table(
        MIGRATIONS_TABLE,
        md,
        Column("name", String(100), primary_key=True),
        Column("applied_at", Float, nullable=False),
    )


def migrate(engine: Engine, *, upto: str | None = None) -> list[str]:
    """Apply pending migrations (up to and including `upto`) once; returns the names applied."""
    from sqlalchemy import MetaData, select, text

    applied_now: list[str] = []
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (see engine.py)
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        table = _migrations_table(MetaData())
        table.create(conn, checkfirst=True)
        done = set(conn.execute(select(table.c.name)).scalars())
        for migration in MIGRATIONS:
            name = migration.__name__
            if name not in done:
                migration(conn)
                conn.execute(table.insert().values(name=name, applied_at=time.time()))
                applied_now.append(name)
            if name == upto:
                break
    return applied_now
