"""Read side of the spend store for the CLI and doctor.

SQLite is read with the stdlib `sqlite3` module (read-only URI) so `memproxy logs` starts fast;
PostgreSQL through SQLAlchemy core, imported only then. Every statement is a constant with bound
parameters; optional filters are `CAST(:p AS TEXT) IS NULL OR col = :p`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from memproxy_cli.paths import Paths
from memproxy_cli.store.rows import DAILY_COUNTERS

GroupBy = Literal["project", "model", "day"]

_RECENT = """SELECT * FROM request_log WHERE (CAST(:project AS TEXT) IS NULL OR project = :project)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND started_at >= :since
  ORDER BY id DESC LIMIT :n"""
_AFTER = """SELECT * FROM request_log WHERE id > :last_id
  AND (CAST(:project AS TEXT) IS NULL OR project = :project)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND started_at >= :since
  ORDER BY id LIMIT :n"""
_IDS_AFTER = """SELECT id FROM request_log WHERE id > :last_id
  AND (CAST(:project AS TEXT) IS NULL OR project = :project)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND started_at >= :since
  ORDER BY id LIMIT :n"""
_LAST_ID = "SELECT MAX(id) AS last_id FROM request_log"
# Literal SQL; tests/test_store_queries.py pins its sums to store/rows.py's counters.
_TOTALS: dict[str, str] = {
    "project": """SELECT project AS key, SUM(requests) AS requests, SUM(failures) AS failures,
  SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens,
  SUM(cost_usd) AS cost_usd
  FROM daily_spend WHERE day >= :since_day GROUP BY project ORDER BY cost_usd DESC""",
    "model": """SELECT model AS key, SUM(requests) AS requests, SUM(failures) AS failures,
  SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens,
  SUM(cost_usd) AS cost_usd
  FROM daily_spend WHERE day >= :since_day GROUP BY model ORDER BY cost_usd DESC""",
    "day": """SELECT day AS key, SUM(requests) AS requests, SUM(failures) AS failures,
  SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens,
  SUM(cost_usd) AS cost_usd
  FROM daily_spend WHERE day >= :since_day GROUP BY day ORDER BY day""",
}
_DAILY: dict[str, str] = {
    "project": """SELECT day, project AS key, SUM(cost_usd) AS cost_usd,
  SUM(prompt_tokens) + SUM(completion_tokens) AS tokens
  FROM daily_spend WHERE day >= :since_day GROUP BY day, project ORDER BY day, project""",
    "model": """SELECT day, model AS key, SUM(cost_usd) AS cost_usd,
  SUM(prompt_tokens) + SUM(completion_tokens) AS tokens
  FROM daily_spend WHERE day >= :since_day GROUP BY day, model ORDER BY day, model""",
}
_PROJECT_COSTS = (
    "SELECT project, SUM(cost_usd) AS cost_usd FROM daily_spend "
    "WHERE day >= :since_day GROUP BY project"
)
_APPLIED = "SELECT name FROM _memproxy_migrations"


class _Runner(Protocol):
    late_ids: int

    def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

    def integrity(self) -> str: ...

    def has_table(self, name: str) -> bool: ...


class _SqliteRunner:
    # One writer at a time takes the next rowid and commits before the next one: ids commit in
    # order.
    late_ids = 0

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        return conn

    def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        conn = self._connect()
        if conn is None:
            return []
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def has_table(self, name: str) -> bool:
        sql = "SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = :name"
        return bool(self.fetch(sql, {"name": name}))

    def integrity(self) -> str:
        conn = self._connect()
        if conn is None:
            return "ok"
        try:
            problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
        return "; ".join(problems)


class _AlchemyRunner:
    # PostgreSQL takes a row's id when it is inserted, not when it commits: with several
    # gateways (or a slow commit) a row can become visible below ids already read.
    late_ids = 10_000

    def __init__(self, database_url: str, paths: Paths) -> None:
        from memproxy_cli.store.engine import open_engine

        self.engine = open_engine(database_url, paths)

    def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        from sqlalchemy import text
        from sqlalchemy.exc import ProgrammingError

        try:
            with self.engine.connect() as conn:
                return [dict(r) for r in conn.execute(text(sql), params).mappings()]
        except ProgrammingError as exc:
            if "does not exist" in str(exc.orig):
                return []
            raise

    def integrity(self) -> str:
        self.fetch("SELECT 1 AS one", {})
        return "ok"

    def has_table(self, name: str) -> bool:
        sql = "SELECT 1 AS one FROM information_schema.tables WHERE table_name = :name"
        return bool(self.fetch(sql, {"name": name}))


def parse_since(value: str | None, now: float | None = None) -> float:
    """`1h`, `30m`, `2d`, `1w` ago, or an ISO date/time (UTC when no zone); None is the epoch."""
    if not value:
        return 0.0
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", value)
    if match:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return now - float(match.group(1)) * unit
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        expected = "1h, 30m, 2d, 1w or a date like 2026-11-01"
        raise ValueError(f"--since: expected {expected}, not {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _log_row(raw: dict[str, Any]) -> dict[str, Any]:
    """The same shape from either backend: `stream` a bool, `extra` a dict."""
    extra = raw.get("extra")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = {}
    raw["extra"] = extra or {}
    if "stream" in raw:
        raw["stream"] = bool(raw["stream"])
    return raw


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


class SpendQueries:
    """Reads of the request log and daily totals; never writes."""

    def __init__(self, runner: _Runner, paths: Paths) -> None:
        self._run = runner
        self._paths = paths

    def _filters(
        self, project: str | None, model: str | None, status: str | None, since: float | None
    ) -> dict[str, Any]:
        return {"project": project, "model": model, "status": status, "since": since or 0.0}

    def recent_rows(
        self,
        n: int = 20,
        project: str | None = None,
        model: str | None = None,
        status: str | None = None,
        since: float | None = None,
    ) -> list[dict[str, Any]]:
        """The last n rows that match, oldest first."""
        params = {**self._filters(project, model, status, since), "n": n}
        return [_log_row(r) for r in reversed(self._run.fetch(_RECENT, params))]

    def rows_after(
        self,
        last_id: int,
        project: str | None = None,
        model: str | None = None,
        status: str | None = None,
        since: float | None = None,
        n: int = 1000,
    ) -> list[dict[str, Any]]:
        """Rows stored after `last_id` (for --follow), in storage order."""
        params = {**self._filters(project, model, status, since), "last_id": last_id, "n": n}
        return [_log_row(r) for r in self._run.fetch(_AFTER, params)]

    def ids_after(
        self,
        last_id: int,
        project: str | None = None,
        model: str | None = None,
        status: str | None = None,
        since: float | None = None,
        n: int = 100_000,
    ) -> list[int]:
        """The ids of the rows after `last_id` that match, in order (cheap: no row is read)."""
        params = {**self._filters(project, model, status, since), "last_id": last_id, "n": n}
        return [int(r["id"]) for r in self._run.fetch(_IDS_AFTER, params)]

    @property
    def late_ids(self) -> int:
        """How far below the newest id a row may still appear when it commits (0: never)."""
        return self._run.late_ids

    def last_id(self) -> int:
        rows = self._run.fetch(_LAST_ID, {})
        return int(rows[0]["last_id"] or 0) if rows else 0

    def spend_totals(
        self, by: GroupBy = "project", since: float | None = None
    ) -> list[dict[str, Any]]:
        rows = self._run.fetch(_TOTALS[by], {"since_day": _day(since or 0.0)})
        for r in rows:
            r["cost_usd"] = float(r["cost_usd"] or 0.0)
            for k in DAILY_COUNTERS:
                r[k] = int(r[k] or 0)
        return rows

    def daily_totals(
        self, by: Literal["project", "model"] = "project", since: float | None = None
    ) -> list[dict[str, Any]]:
        """Per UTC day and project (or model): cost and tokens (prompt + completion)."""
        rows = self._run.fetch(_DAILY[by], {"since_day": _day(since or 0.0)})
        for r in rows:
            r["cost_usd"] = float(r["cost_usd"] or 0.0)
            r["tokens"] = int(r["tokens"] or 0)
        return rows

    def project_costs(self, since_day: str) -> dict[str, float]:
        """USD per project from `since_day` (UTC, inclusive) on: what budgets are seeded with."""
        rows = self._run.fetch(_PROJECT_COSTS, {"since_day": since_day})
        return {str(r["project"]): float(r["cost_usd"] or 0.0) for r in rows}

    def applied_migrations(self) -> list[str]:
        return [str(r["name"]) for r in self._run.fetch(_APPLIED, {})]

    def is_memproxy_store(self) -> bool:
        """The store has memproxy's migrations table (it is not some other database)."""
        return self._run.has_table("_memproxy_migrations")

    def migrations_current(self) -> bool:
        from memproxy_cli.store.migrations import migration_names

        return set(migration_names()) <= set(self.applied_migrations())

    def integrity_check(self) -> str:
        """'ok', or what is wrong."""
        return self._run.integrity()

    def pending_spill(self) -> int:
        from memproxy_cli.store.spill import count_pending

        return count_pending(self._paths.spill_file)


def open_queries(database_url: str | None, paths: Paths) -> SpendQueries:
    from memproxy_cli.store.engine import is_postgres

    if is_postgres(database_url):
        assert database_url is not None
        return SpendQueries(_AlchemyRunner(database_url, paths), paths)
    if database_url and database_url.startswith("sqlite:///"):
        return SpendQueries(_SqliteRunner(Path(database_url[len("sqlite:///") :])), paths)
    return SpendQueries(_SqliteRunner(paths.spend_db), paths)
