"""A remote backend behind the shared Redis recall cache (budget/recall_cache.py).

Only for backends every instance shares (Supermemory, the PostgreSQL store): a per-instance
store (the local file) is never cached, since another instance's cached answer would come from
another store. A backend's `cache_namespace` (default: its name) says which store an answer
came from: the PostgreSQL backend's names its database, so teams sharing a Redis never mix.
A stored turn or a forgotten memory drops the scope's cached answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from memproxy_cli.memory.backend import Memory, MemoryBackend, Turn

if TYPE_CHECKING:
    from memproxy_cli.budget.recall_cache import RecallCache

TTL_S = 30  # a bound on staleness when another instance stores without a cache


class CachedBackend:
    def __init__(self, backend: MemoryBackend, cache: RecallCache) -> None:
        self.name = backend.name
        self._namespace = str(getattr(backend, "cache_namespace", backend.name))
        self._backend = backend
        self._cache = cache
        self._fills: set[asyncio.Task[bool]] = set()

    def _key(self, scope: str) -> str:
        return f"{self._namespace}:{scope}"

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        hit, generation = await self._cache.lookup(self._key(scope), query, k)
        if isinstance(hit, list):
            return [Memory(**m) for m in hit if isinstance(m, dict)]
        found = await self._backend.search(scope, query, k)
        if generation is None:  # Redis did not answer: nothing to fill
            return found
        value = [asdict(m) for m in found]
        fill = self._cache.set(self._key(scope), query, k, value, TTL_S, generation)
        task = asyncio.get_running_loop().create_task(fill)
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)
        return found

    async def _invalidate(self, scope: str) -> None:
        if self._fills:  # a fill of the old answer must not land after the invalidation
            await asyncio.wait(set(self._fills))
        await self._cache.invalidate(self._key(scope))

    async def add(self, scope: str, turn: Turn) -> str | None:
        try:
            return await self._backend.add(scope, turn)
        finally:
            await self._invalidate(scope)

    async def list(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        return await self._backend.list(scope, limit, offset)

    async def forget(self, scope: str, memory_id: str) -> bool:
        try:
            return await self._backend.forget(scope, memory_id)
        finally:
            await self._invalidate(scope)

    async def export(self, scope: str) -> Sequence[Memory]:
        return await self._backend.export(scope)

    async def close(self) -> None:
        if self._fills:
            await asyncio.wait(set(self._fills))
        await self._backend.close()
