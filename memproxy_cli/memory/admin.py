"""What the `memproxy memory` commands do, without Typer or Rich: open the store, shape records."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from memproxy_cli.config import Config
from memproxy_cli.memory.backend import Memory, MemoryBackend
from memproxy_cli.paths import Paths

T = TypeVar("T")


def open_backend(config: Config, paths: Paths, project: str | None) -> MemoryBackend | None:
    """The project's backend, or None when memory is off or the local store does not exist yet."""
    from memproxy_cli.memory.service import MemoryService, in_database

    settings = config.memory_for(project)
    shared = settings.backend != "local" or in_database(config, settings)
    if not shared and not paths.local_memory(config.memory.local.path).exists():
        return None
    cache = None
    if config.redis_url and shared:  # forget drops cached recalls
        from memproxy_cli.budget.recall_cache import RecallCache

        cache = RecallCache(config.redis_url)
    return MemoryService(config, paths, cache=cache).backend_for(settings)


def run(backend: MemoryBackend, call: Callable[[MemoryBackend], Awaitable[T]]) -> T:
    """Run one backend call to completion and close the backend (CLI use)."""

    async def _go() -> T:
        try:
            return await call(backend)
        finally:
            await backend.close()

    return asyncio.run(_go())


def to_record(memory: Memory) -> dict[str, Any]:
    created = datetime.fromtimestamp(memory.created_at, UTC).isoformat(timespec="seconds")
    return {
        "id": memory.id,
        "scope": memory.scope,
        "created_at": created,
        "score": round(memory.score, 4),
        "text": memory.text,
        "metadata": memory.metadata,
    }


_STATS_SQL = """
SELECT coalesce(json_extract(metadata, '$.client'), ''), count(*), sum(length(text)),
    sum(coalesce(json_extract(metadata, '$.repeats'), 0)),
    sum(coalesce(json_extract(metadata, '$.chrome_chars'), 0) > 0),
    sum(coalesce(json_extract(metadata, '$.chrome_chars'), 0))
FROM memories WHERE scope = ? GROUP BY 1 ORDER BY 2 DESC
"""


def memory_stats(config: Config, paths: Paths, project: str) -> dict[str, Any]:
    """What the store holds for a project, per client, and why turns were left out."""
    from memproxy_cli.memory.capture_stats import FILE_NAME, read_counts

    rows = _stat_rows(config, paths, project)
    by_client = {
        (client or "unknown"): {"memories": n, "chars": chars} for client, n, chars, *_ in rows
    }
    skipped = read_counts(paths.data_dir / FILE_NAME).get(project, {})
    return {
        "project": project,
        "backend": config.memory_for(project).backend,
        "memories": sum(r[1] for r in rows),
        "chars": sum(r[2] for r in rows),
        "by_client": by_client,
        "duplicates_skipped": sum(r[3] for r in rows),
        "chrome_stripped": {"memories": sum(r[4] for r in rows), "chars": sum(r[5] for r in rows)},
        "skipped": dict(sorted(skipped.items())),
    }


def _stat_rows(
    config: Config, paths: Paths, project: str
) -> list[tuple[str, int, int, int, int, int]]:
    """(client, memories, chars, repeats, with chrome, chrome chars) per client."""
    from memproxy_cli.memory.service import in_database

    settings = config.memory_for(project)
    if settings.backend == "local" and not in_database(config, settings):
        path = paths.local_memory(config.memory.local.path)
        if not path.exists():
            return []
        import sqlite3

        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [
                (str(c), int(n), int(s or 0), int(r or 0), int(w or 0), int(cc or 0))
                for c, n, s, r, w, cc in conn.execute(_STATS_SQL, (project,))
            ]
        finally:
            conn.close()
    backend = open_backend(config, paths, project)
    if backend is None:
        return []
    found = run(backend, lambda b: b.export(project))
    totals: dict[str, list[int]] = {}
    for m in found:
        meta = m.metadata
        row = totals.setdefault(str(meta.get("client") or ""), [0, 0, 0, 0, 0])
        chrome = _count(meta.get("chrome_chars"))
        repeats = _count(meta.get("repeats"))
        row[0] += 1
        row[1] += len(m.text)
        row[2] += repeats
        row[3] += chrome > 0
        row[4] += chrome
    return [(c, v[0], v[1], v[2], v[3], v[4]) for c, v in totals.items()]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
