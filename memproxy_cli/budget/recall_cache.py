"""A Redis cache for memory recall results: one hash per scope, one field per query and k.

Only remote backends are cached (memory/cached_backend.py): every instance asks the same
service, so what one instance cached is right for all. A new turn or a forget in the scope
deletes the scope's hash and moves its generation; an answer is only cached under the
generation its search started in, so a search that read the store before another instance's
forget cannot bring the forgotten memory back from the cache.
Lookups and fills are bounded by short timeouts and a circuit breaker: a miss is always an
answer. An invalidation runs after the response (or in a CLI command), so it gets a longer
timeout and is always tried: one lost to a busy Redis would let a forgotten memory come back
until the TTL.
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


def generation_key(scope: str) -> str:
    return KEY_PREFIX + "gen:" + hashlib.sha256(scope.encode()).hexdigest()


# Both return in one round trip; KEYS: generation, hash.
_LOOKUP_LUA = """
return {redis.call('GET', KEYS[1]) or '0', redis.call('HGET', KEYS[2], ARGV[1])}
"""
_FILL_LUA = """
if ARGV[4] ~= '' and ARGV[4] ~= (redis.call('GET', KEYS[1]) or '0') then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""
GENERATION_TTL_S = 86400  # far longer than any cached answer lives
BACKGROUND_TIMEOUT_S = 1.0  # invalidations: never on a request's path


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
        self._background: redis.asyncio.Redis | None = None

    def _redis(self) -> redis.asyncio.Redis:
        if self._client is None:
            from memproxy_cli.budget.redis_client import async_client

            self._client = async_client(self._url, self._timeout_s)
        return self._client

    def _redis_background(self) -> redis.asyncio.Redis:
        if self._background is None:
            from memproxy_cli.budget.redis_client import async_client

            self._background = async_client(self._url, max(self._timeout_s, BACKGROUND_TIMEOUT_S))
        return self._background

    async def get(self, scope: str, query: str, k: int) -> Any | None:
        """The cached value, or None (miss, Redis down, or breaker open)."""
        return (await self.lookup(scope, query, k))[0]

    async def lookup(self, scope: str, query: str, k: int) -> tuple[Any | None, str | None]:
        """The cached value (or None) and the scope's generation to fill a miss under (None
        when Redis did not answer)."""
        keys = (generation_key(scope), scope_key(scope))
        found = await self._call(self._redis().eval(_LOOKUP_LUA, 2, *keys, query_field(query, k)))
        if not isinstance(found, list) or len(found) != 2:
            return None, None
        generation = found[0].decode() if isinstance(found[0], bytes) else str(found[0])
        if found[1] is None:
            return None, generation
        try:
            return json.loads(found[1]), generation
        except ValueError:
            return None, generation

    async def set(
        self,
        scope: str,
        query: str,
        k: int,
        value: Any,
        ttl_s: int = 300,
        generation: str | None = None,
    ) -> bool:
        """Cache `value`; with `generation` (from `lookup`), only if the scope was not
        invalidated since."""
        keys = (generation_key(scope), scope_key(scope))
        args = (query_field(query, k), json.dumps(value), ttl_s, generation or "")
        return bool(await self._call(self._redis().eval(_FILL_LUA, 2, *keys, *args)))

    async def invalidate(self, scope: str) -> bool:
        """Forget every cached recall of `scope` (a turn was stored or a memory forgotten)."""
        pipe = self._redis_background().pipeline(transaction=True)
        pipe.incr(generation_key(scope))
        pipe.expire(generation_key(scope), GENERATION_TTL_S)
        pipe.delete(scope_key(scope))
        try:  # past the breaker: an invalidation is always tried
            await asyncio.wait_for(pipe.execute(), BACKGROUND_TIMEOUT_S * 2)
        except Exception as exc:
            log.warning("redis recall cache: invalidation failed: %s", exc.__class__.__name__)
            return False
        return True

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
        for client in (self._client, self._background):
            if client is not None:
                await client.aclose()
        self._client = self._background = None
