"""Open the spend store: SQLite in the data dir by default, PostgreSQL (psycopg 3) for teams."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from memproxy_cli.paths import Paths

BUSY_TIMEOUT_MS = 5000


def is_postgres(database_url: str | None) -> bool:
    return bool(database_url) and str(database_url).startswith(("postgresql", "postgres:"))


def sqlalchemy_url(database_url: str | None, paths: Paths) -> str:
    """The SQLAlchemy URL: psycopg 3 for PostgreSQL, the data-dir file when unset."""
    if not database_url:
        return f"sqlite:///{paths.spend_db}"
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def open_engine(
    database_url: str | None, paths: Paths, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Engine:
    """An engine whose SQLite connections run in WAL with a busy timeout and IMMEDIATE writes."""
    from sqlalchemy import create_engine

    url = sqlalchemy_url(database_url, paths)
    if url.startswith("sqlite"):
        if not database_url:
            paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _sqlite_engine(url, busy_timeout_ms)
    args: dict[str, Any] = {"connect_timeout": 5}
    return create_engine(url, connect_args=args, pool_pre_ping=True, pool_size=2)


def _use_wal(cur: Any, timeout_s: float) -> None:
    """Switch the file to WAL (a persistent setting: once is enough).

    Switching takes an exclusive lock and SQLite does not always wait for it (two new
    connections racing on a fresh file get "database is locked" at once), so retry until
    the busy timeout is spent.
    """
    import sqlite3

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    from sqlalchemy import create_engine, event

    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver's implicit transactions are off; "begin" below issues our own.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        _use_wal(cur, busy_timeout_ms / 1000)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front so a busy store waits (busy_timeout) instead of failing.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
