"""What the `memproxy memory` commands do, without Typer or Rich: open the store, shape records."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from memproxy_cli.config import Config
from memproxy_cli.memory.backend import Memory, MemoryBackend
from memproxy_cli.paths import Paths

T = TypeVar("T")


def local_path(config: Config, paths: Paths) -> Path:
    configured = config.memory.local.path
    return Path(configured).expanduser() if configured else paths.memory_db


def open_backend(config: Config, paths: Paths, project: str | None) -> MemoryBackend | None:
    """The project's backend, or None when memory is off or the local store does not exist yet."""
    from memproxy_cli.memory.service import MemoryService

    settings = config.memory_for(project)
    if settings.backend == "local" and not local_path(config, paths).exists():
        return None
    cache = None
    if config.redis_url and settings.backend != "local":  # forget drops cached recalls
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
