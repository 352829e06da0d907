"""Store: the spend log opens, passes its integrity check, is migrated; spill pending.

Uses the store's own read side (`store.queries`), so SQLite and PostgreSQL are checked alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from memproxy_cli.doctor.redact import safe_url
from memproxy_cli.doctor.result import CheckResult, fail, ok, warn
from memproxy_cli.paths import Paths

if TYPE_CHECKING:
    from memproxy_cli.store.queries import SpendQueries

MIGRATIONS_TABLE = "_memproxy_migrations"


def check_store(paths: Paths, database_url: str | None) -> list[CheckResult]:
    from memproxy_cli.store.engine import is_postgres
    from memproxy_cli.store.queries import open_queries

    where = safe_url(database_url) if database_url and is_postgres(database_url) else None
    db = _sqlite_file(database_url) or paths.spend_db
    if where is None and not db.exists():
        return [
            ok("store", f"{db} not created yet (the daemon creates it)"),
            spill_pending(paths.spill_file),
        ]
    name = where or str(db)
    try:
        queries = open_queries(database_url, paths)
        checks = [integrity(queries, name), migrations(queries, name)]
    except Exception as exc:  # any driver error: what the user needs is the store and the reason
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return [fail("store", f"{name} does not open: {reason}", _restore_fix(name))]
    return [*checks, spill_pending(paths.spill_file)]


def _sqlite_file(database_url: str | None) -> Path | None:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL (SQLAlchemy form)."""
    if not database_url or "://" not in database_url:
        return None
    rest = database_url.split("://", 1)[1].split("?", 1)[0]
    return Path(rest[1:]) if rest.startswith("/") and len(rest) > 1 else None


def integrity(queries: SpendQueries, name: str) -> CheckResult:
    found = queries.integrity_check()
    if found == "ok":
        return ok("store integrity", f"{name} passes its integrity check")
    return fail("store integrity", f"{name}: {found[:300]}", _restore_fix(name))


def _restore_fix(name: str) -> str:
    if "://" in name:
        return f"check that {name} is reachable and the user may read it"
    return f"stop memproxy, move {name} aside (mv {name} {name}.broken) and `memproxy up` afresh"


def _expected_migrations() -> list[str]:
    from memproxy_cli.store.migrations import migration_names

    return migration_names()


def migrations(queries: SpendQueries, name: str) -> CheckResult:
    if not queries.is_memproxy_store():
        return fail(
            "store migrations",
            f"{name} has no {MIGRATIONS_TABLE} table: not a memproxy store",
            _restore_fix(name),
        )
    applied = set(queries.applied_migrations())
    pending = [n for n in _expected_migrations() if n not in applied]
    if not pending:
        return ok("store migrations", f"current ({len(applied)} applied)")
    return warn(
        "store migrations",
        f"{len(pending)} pending: {', '.join(pending)}",
        "`memproxy down && memproxy up`: the daemon migrates on start",
    )


def spill_pending(spill: Path) -> CheckResult:
    """Rows the writer could not store yet, in the spill file and an unfinished replay."""
    from memproxy_cli.store.spill import count_pending

    try:
        total = count_pending(spill)
    except OSError as exc:
        return fail("store spill", f"{spill}: {exc.strerror}", f"check the permissions of {spill}")
    if total == 0:
        return ok("store spill", "no rows waiting")
    return warn(
        "store spill",
        f"{total} request rows wait in {spill} (the store was not writable)",
        "keep memproxy running with a writable store: it replays them",
    )
