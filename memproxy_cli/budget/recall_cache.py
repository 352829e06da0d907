"""A Redis cache for memory recall results: one hash per scope, one field per query and k.

Only remote backends are cached (memory/cached_backend.py): every instance asks the same
service, so what one instance cached is right for all. A new turn or a forget in the scope
deletes the scope's hash, so a forgotten memory never comes back from the cache.
Every call is bounded by short timeouts and a circuit breaker: a miss is always an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from memproxy_cli.budget.breaker import CircuitBreaker

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger(__name__)

KEY_PREFIX = "memproxy:recall:"


def scope_key(scope: str) -> str:
    return KEY_PREFIX + hashlib.sha256(scope.encode()).hexdigest()


def query_field(query: str, k: int) -> str:
    return hashlib.sha256(json.dumps([query, k]).encode()).hexdigest()


class RecallCache:
    def __init__(
        self, redis_url: str, *, timeout_s: float = 0.05, breaker: CircuitBreaker | None = None
    ) -> None:
        self._url = redis_url
        self._timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker()
        self._client: redis.asyncio.Redis | None = None

    def _redis(self) -> redis.asyncio.Redis:
        if self._client is None:
            from memproxy_cli.budget.redis_client import async_client

            self._client = async_client(self._url, self._timeout_s)
        return self._client

    async def get(self, scope: str, query: str, k: int) -> Any | None:
        """The cached value, or None (miss, Redis down, or breaker open)."""
        raw = await self._call(self._redis().hget(scope_key(scope), query_field(query, k)))
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def set(self, scope: str, query: str, k: int, value: Any, ttl_s: int = 300) -> bool:
        data = json.dumps(value)
        pipe = self._redis().pipeline(transaction=True)
        pipe.hset(scope_key(scope), query_field(query, k), data)
        pipe.expire(scope_key(scope), ttl_s)
        ok = await self._call(pipe.execute())
        return bool(ok)

    async def invalidate(self, scope: str) -> bool:
        """Forget every cached recall of `scope` (a turn was stored or a memory forgotten)."""
        return await self._call(self._redis().delete(scope_key(scope))) is not None

    async def _call(self, awaitable: Any) -> Any:
        if not self.breaker.allow():
            awaitable.close()
            return None
        try:
            # wait_for is the backstop when a socket timeout does not fire (e.g. a stuck connect)
            result = await asyncio.wait_for(awaitable, self._timeout_s * 2)
        except Exception as exc:
            self.breaker.failure()
            log.debug("redis recall cache skipped: %s", exc.__class__.__name__)
            return None
        self.breaker.success()
        return result

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
