"""Store: the SQLite spend log opens, passes its integrity check, is migrated; spill pending.

Uses the standard library on `paths.spend_db` so it works without the store's engine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from memproxy_cli.doctor.redact import safe_url
from memproxy_cli.doctor.result import CheckResult, fail, ok, skip, warn
from memproxy_cli.paths import Paths

MIGRATIONS_TABLE = "_memproxy_migrations"


def check_store(paths: Paths, database_url: str | None) -> list[CheckResult]:
    if database_url and not database_url.startswith("sqlite"):
        found = f"database_url is {safe_url(database_url)}; doctor checks the SQLite store only"
        return [skip("store", found), spill_pending(paths.spill_file)]
    db = _sqlite_file(database_url) or paths.spend_db
    if not db.exists():
        return [
            ok("store", f"{db} not created yet (the daemon creates it)"),
            spill_pending(paths.spill_file),
        ]
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        return [fail("store", f"{db} does not open: {exc}", f"check the permissions of {db}")]
    try:
        return [integrity(conn, db), migrations(conn, db), spill_pending(paths.spill_file)]
    finally:
        conn.close()


def _sqlite_file(database_url: str | None) -> Path | None:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL (SQLAlchemy form)."""
    if not database_url or "://" not in database_url:
        return None
    rest = database_url.split("://", 1)[1].split("?", 1)[0]
    return Path(rest[1:]) if rest.startswith("/") and len(rest) > 1 else None


def integrity(conn: sqlite3.Connection, db: Path) -> CheckResult:
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.Error as exc:
        return fail("store integrity", f"{db}: {exc}", _restore_fix(db))
    if rows == ["ok"]:
        return ok("store integrity", f"{db} passes PRAGMA integrity_check")
    return fail("store integrity", f"{db}: " + "; ".join(rows[:3]), _restore_fix(db))


def _restore_fix(db: Path) -> str:
    return f"stop memproxy, move {db} aside (mv {db} {db}.broken) and `memproxy up` to start afresh"


def _expected_migrations() -> list[str] | None:
    import importlib

    try:  # the store package may be older than this check
        migrations = importlib.import_module("memproxy_cli.store.migrations")
    except ImportError:
        return None
    names = getattr(migrations, "migration_names", None)
    return [str(n) for n in names()] if callable(names) else None


def migrations(conn: sqlite3.Connection, db: Path) -> CheckResult:
    try:
        rows = conn.execute("SELECT name FROM _memproxy_migrations").fetchall()
    except sqlite3.Error:
        return fail(
            "store migrations",
            f"{db} has no {MIGRATIONS_TABLE} table: not a memproxy store",
            _restore_fix(db),
        )
    applied = {str(r[0]) for r in rows}
    expected = _expected_migrations()
    if expected is None:
        return warn("store migrations", f"{len(applied)} applied; expected set unknown", None)
    pending = [n for n in expected if n not in applied]
    if not pending:
        return ok("store migrations", f"current ({len(expected)} applied)")
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
