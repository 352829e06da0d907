"""One batch in one transaction: insert new rows (once per request_id), add them to daily totals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memproxy_cli.store.models import daily_spend, request_log
from memproxy_cli.store.rows import RequestRow

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine import Engine

_SUMMED = (
    "requests",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
)
_COLUMNS = frozenset(c.name for c in request_log.columns) - {"id"}


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def write_batch(engine: Engine, rows: Sequence[RequestRow]) -> list[RequestRow]:
    """Store rows not stored before; returns those actually inserted (replays are no-ops)."""
    unique = list({r.request_id: r for r in rows}.values())
    if not unique:
        return []
    with engine.begin() as conn:
        inserted_ids = _insert_rows(conn, unique)
        inserted = [r for r in unique if r.request_id in inserted_ids]
        _add_to_daily(conn, inserted)
    return inserted


def _dialect_insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def _row_values(row: RequestRow) -> dict[str, Any]:
    data = row.to_dict()
    values = {k: v for k, v in data.items() if k in _COLUMNS}
    values["extra"] = data["extra"] or None
    return values


def _insert_rows(conn: Connection, rows: list[RequestRow]) -> set[str]:
    insert = _dialect_insert(conn)
    stmt = (
        insert(request_log)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(request_log.c.request_id)
    )
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
        t["failures"] += 0 if r.status == "ok" else 1
        t["prompt_tokens"] += r.prompt_tokens or 0
        t["completion_tokens"] += r.completion_tokens or 0
        t["cache_read_tokens"] += r.cache_read_tokens or 0
        t["cache_write_tokens"] += r.cache_write_tokens or 0
        t["cost_usd"] += r.cost_usd or 0.0
    return list(totals.values())


def _add_to_daily(conn: Connection, rows: list[RequestRow]) -> None:
    totals = daily_totals(rows)
    if not totals:
        return
    insert = _dialect_insert(conn)
    stmt = insert(daily_spend)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "project", "model"],
        set_={name: daily_spend.c[name] + stmt.excluded[name] for name in _SUMMED},
    )
    # Sorted keys: two PostgreSQL writers never lock the same aggregates in opposite order.
    conn.execute(stmt, sorted(totals, key=lambda t: (t["day"], t["project"], t["model"])))
