"""One batch in one transaction: insert new rows (once per request_id), add them to daily totals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import orjson

from memproxy_cli.errors import RowStatus
from memproxy_cli.store.models import daily_spend, request_log
from memproxy_cli.store.rows import DAILY_COUNTERS, TOKEN_COUNTERS, RequestRow

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine import Engine

_SUMMED = (*DAILY_COUNTERS, "cost_usd")
_tokens_of = attrgetter(*TOKEN_COUNTERS)
_COLUMNS = tuple(c.name for c in request_log.columns if c.name != "id")
_values_of = attrgetter(*_COLUMNS)
_EXTRA = _COLUMNS.index("extra")
_FLOAT_COLUMNS = tuple(
    i for i, name in enumerate(_COLUMNS) if request_log.c[name].type.python_type is float
)
_EXISTING_SQLITE = (
    "SELECT request_id FROM request_log WHERE request_id IN (SELECT value FROM json_each(?))"
)


def utc_day(ts: float) -> str:
    return _day_name(int(ts // 86_400))


@cache
def _day_name(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * 86_400, UTC).strftime("%Y-%m-%d")


def write_batch(engine: Engine, rows: Sequence[RequestRow]) -> list[RequestRow]:
    """Store rows not stored before; returns those actually inserted (replays are no-ops)."""
    unique = list({r.request_id: r for r in rows}.values())
    if not unique:
        return []
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            inserted_ids = _insert_rows_sqlite(conn, unique)
        elif conn.dialect.name == "postgresql":
            inserted_ids = _insert_rows_postgres(conn, unique)
        else:
            inserted_ids = _insert_rows(conn, unique)
        inserted = [r for r in unique if r.request_id in inserted_ids]
        _add_to_daily(conn, inserted)
    return inserted


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer wider than 64 bits
        return json.dumps(value, default=str)


def _dialect_insert(dialect_name: str) -> Any:
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def _row_values(row: RequestRow) -> dict[str, Any]:
    values = dict(zip(_COLUMNS, _values_of(row), strict=True))
    values["extra"] = values["extra"] or None
    return values


def _row_tuple(row: RequestRow) -> tuple[Any, ...]:
    values = _values_of(row)
    extra = _json(values[_EXTRA]) if values[_EXTRA] else None
    return (*values[:_EXTRA], extra, *values[_EXTRA + 1 :])


# Rows per INSERT: 32 rows of 31 values stay under the oldest SQLite limit of 999 variables.
# A batch goes out in these few statement shapes, each compiled once and cached by the driver.
_SQLITE_CHUNKS = (32, 8, 2, 1)


@cache
def _sqlite_insert_sql(rows: int) -> str:
    """INSERT ... VALUES (...), (...) for `rows` rows.

    One statement steps once for many rows: the driver releases and retakes the GIL once a
    chunk instead of once a row (per-row executemany fell behind at ~1,500 requests/s on 2
    cores while the event loop was busy), and every value is bound as itself (a JSON batch
    made SQLite parse each row's text once per column).
    """
    one = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    return " ".join(
        (
            "INSERT INTO request_log (" + ", ".join(_COLUMNS) + ")",
            "VALUES " + ", ".join([one] * rows),
            "ON CONFLICT (request_id) DO NOTHING",
        )
    )


_PG_ARRAY_TYPES: dict[type, str] = {
    float: "float8[]",
    int: "int8[]",
    bool: "bool[]",
    dict: "json[]",
}


@cache
def _postgres_insert_sql() -> str:
    """One INSERT ... SELECT FROM unnest(column arrays): one statement, one round trip a batch."""
    casts = []
    for name in _COLUMNS:
        python_type = dict if name == "extra" else request_log.c[name].type.python_type
        casts.append("%s::" + _PG_ARRAY_TYPES.get(python_type, "text[]"))
    columns = ", ".join(_COLUMNS)
    arrays = ", ".join(casts)
    return " ".join(
        (
            "INSERT INTO request_log (" + columns + ")",
            # identifiers and types from the table definition; values are all bound
            "SELECT * FROM unnest(" + arrays + ")",  # noqa: S608
            "ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
        )
    )


def _insert_rows_postgres(conn: Connection, rows: list[RequestRow]) -> set[str]:
    columns = [list(values) for values in zip(*(_row_tuple(r) for r in rows), strict=True)]
    for i in _FLOAT_COLUMNS:
        columns[i] = [None if v is None else float(v) for v in columns[i]]
    result = conn.exec_driver_sql(_postgres_insert_sql(), tuple(columns))
    return {row[0] for row in result}


def _insert_rows_sqlite(conn: Connection, rows: list[RequestRow]) -> set[str]:
    """The SQLite fast path: a few multi-row statements, no per-row SQLAlchemy work.

    Inside BEGIN IMMEDIATE nobody else writes, so rows not present before are the ones inserted.
    """
    ids = _json([r.request_id for r in rows])
    existing = {row[0] for row in conn.exec_driver_sql(_EXISTING_SQLITE, (ids,))}
    fresh = [r for r in rows if r.request_id not in existing]
    values = [_row_tuple(r) for r in fresh]
    start = 0
    for size in _SQLITE_CHUNKS:
        while len(values) - start >= size:
            chunk = values[start : start + size]
            conn.exec_driver_sql(_sqlite_insert_sql(size), tuple(chain.from_iterable(chunk)))
            start += size
    return {r.request_id for r in fresh}


@cache
def _insert_returning(dialect_name: str) -> Any:
    return (
        _dialect_insert(dialect_name)(request_log)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(request_log.c.request_id)
    )


def _insert_rows(conn: Connection, rows: list[RequestRow]) -> set[str]:
    stmt = _insert_returning(conn.dialect.name)
    result = conn.execute(stmt, [_row_values(r) for r in rows])
    return set(result.scalars())


def daily_totals(rows: Sequence[RequestRow]) -> list[dict[str, Any]]:
    """Per (UTC day, project, model) sums of a batch."""
    totals: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (utc_day(r.started_at), r.project or "", r.model or "")
        t = totals.get(key)
        if t is None:
            t = totals[key] = dict.fromkeys(_SUMMED, 0)
            t.update(day=key[0], project=key[1], model=key[2], cost_usd=0.0)
        t["requests"] += 1
        t["failures"] += 0 if r.status == RowStatus.OK else 1
        for name, value in zip(TOKEN_COUNTERS, _tokens_of(r), strict=True):
            t[name] += value or 0
        t["cost_usd"] += r.cost_usd or 0.0
    return list(totals.values())


@cache
def _daily_upsert(dialect_name: str) -> Any:
    stmt = _dialect_insert(dialect_name)(daily_spend)
    return stmt.on_conflict_do_update(
        index_elements=["day", "project", "model"],
        set_={name: daily_spend.c[name] + stmt.excluded[name] for name in _SUMMED},
    )


def _add_to_daily(conn: Connection, rows: list[RequestRow]) -> None:
    totals = daily_totals(rows)
    if not totals:
        return
    stmt = _daily_upsert(conn.dialect.name)
    # Sorted keys: two PostgreSQL writers never lock the same aggregates in opposite order.
    conn.execute(stmt, sorted(totals, key=lambda t: (t["day"], t["project"], t["model"])))
