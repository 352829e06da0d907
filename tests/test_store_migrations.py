"""Numbered migrations on a blank store and on an older one, SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from memproxy_cli.paths import Paths
from memproxy_cli.store.engine import open_engine
from memproxy_cli.store.insert import write_batch
from memproxy_cli.store.migrations import SQLITE_UNUSED_INDEXES, migrate, migration_names
from memproxy_cli.store.models import daily_spend, request_log
from memproxy_cli.store.queries import open_queries
from tests.fixtures.spend import make_row


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def _indexes(engine: sa.Engine, table: str) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(engine).get_indexes(table)}


def test_blank_store_gets_every_migration_once(store_url: str | None, paths: Paths) -> None:
    engine = open_engine(store_url, paths)
    assert migrate(engine) == migration_names()
    assert migrate(engine) == []
    assert _columns(engine, "request_log") == {c.name for c in request_log.columns}
    assert _columns(engine, "daily_spend") == {c.name for c in daily_spend.columns}
    expected = {i.name for i in request_log.indexes}
    if engine.dialect.name == "sqlite":
        expected -= set(SQLITE_UNUSED_INDEXES)
    assert expected == _indexes(engine, "request_log") - {
        "sqlite_autoindex_request_log_1",  # the UNIQUE request_id index, by engine
        "request_log_request_id_key",
    }
    queries = open_queries(store_url, paths)
    assert queries.migrations_current()
    assert queries.applied_migrations() == migration_names()


def test_older_store_is_upgraded_and_keeps_its_rows(store_url: str | None, paths: Paths) -> None:
    engine = open_engine(store_url, paths)
    assert migrate(engine, upto="m001_initial") == ["m001_initial"]
    assert "trace_id" not in _columns(engine, "request_log")
    names = ("request_id", "started_at", "endpoint", "stream", "status", "memories_injected")
    old = sa.table("request_log", *(sa.column(n) for n in (*names, "project")))
    with engine.begin() as conn:
        conn.execute(
            old.insert().values(
                request_id="old-1",
                started_at=1.0,
                endpoint="/v1/messages",
                stream=False,
                status="ok",
                memories_injected=0,
                project="legacy",
            )
        )
    assert not open_queries(store_url, paths).migrations_current()

    assert migrate(engine, upto="m002_client_identity") == ["m002_client_identity"]
    assert "ix_request_log_trace_id" in _indexes(engine, "request_log")
    assert migrate(engine, upto="m003_no_trace_id_index") == ["m003_no_trace_id_index"]
    assert "ix_request_log_trace_id" not in _indexes(engine, "request_log")
    assert set(SQLITE_UNUSED_INDEXES) <= _indexes(engine, "request_log")
    assert migrate(engine) == ["m004_sqlite_unused_indexes"]
    left = _indexes(engine, "request_log") & set(SQLITE_UNUSED_INDEXES)
    assert left == (set() if engine.dialect.name == "sqlite" else set(SQLITE_UNUSED_INDEXES))
    write_batch(engine, [make_row(request_id="new-1", trace_id="t" * 32, client_session="s1")])
    rows = open_queries(store_url, paths).recent_rows(10)
    got = [(r["request_id"], r["trace_id"]) for r in rows]
    assert got == [("old-1", None), ("new-1", "t" * 32)]
    assert open_queries(store_url, paths).migrations_current()


def test_concurrent_starts_migrate_once(store_url: str | None, paths: Paths) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(migrate(open_engine(store_url, paths)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], migration_names()]


def test_the_migrated_schema_is_the_rows_definition(store_url: str | None, paths: Paths) -> None:
    """Migrations stay literal; what they build must be what store/rows.py defines."""
    engine = open_engine(store_url, paths)
    migrate(engine)
    found = {c["name"]: c for c in sa.inspect(engine).get_columns("request_log")}
    for column in request_log.columns:
        got = found[column.name]
        assert bool(got["nullable"]) == bool(column.nullable) or column.primary_key, column.name
        length = getattr(column.type, "length", None)
        if length is not None:
            assert getattr(got["type"], "length", None) == length, column.name


def test_sqlite_reads_of_the_log_use_no_dropped_index(paths: Paths) -> None:
    """The queries the dropped indexes were for scan by rowid on SQLite, with or without them."""
    engine = open_engine(None, paths)
    migrate(engine, upto="m003_no_trace_id_index")
    write_batch(engine, [make_row(request_id=f"r{i}", project=f"p{i % 3}") for i in range(50)])
    params = {"project": "p1", "model": "m", "status": "ok", "since": 1.0, "n": 5, "last_id": 3}
    before = _plans(engine, params)
    migrate(engine)
    assert _plans(engine, params) == before
    for plan in before:
        assert not any(name in plan for name in SQLITE_UNUSED_INDEXES), plan


def _plans(engine: sa.Engine, params: dict[str, object]) -> list[str]:
    from memproxy_cli.store import queries

    with engine.connect() as conn:
        return [
            " ".join(str(r[-1]) for r in conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql), params))
            for sql in (queries._RECENT, queries._AFTER)
        ]
