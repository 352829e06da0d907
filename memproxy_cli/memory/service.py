"""The one object the gateway calls: recall before the upstream call, remember after it."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memproxy_cli.config import Config, MemoryConfig, resolve_secret
from memproxy_cli.memory.backend import Memory, MemoryBackend, Turn
from memproxy_cli.memory.background import is_background_call
from memproxy_cli.memory.conversation import Conversation, Dialect, new_user_text
from memproxy_cli.memory.redact import redact_prefix
from memproxy_cli.memory.strategies import build_query, drop_present, render_block
from memproxy_cli.memory.turn_text import MAX_PART_CHARS
from memproxy_cli.paths import Paths

if TYPE_CHECKING:
    import httpx

    from memproxy_cli.budget.recall_cache import RecallCache

log = logging.getLogger("memproxy.memory")

MAX_PENDING_STORES = 256
# Backends every instance shares: only these are put behind the Redis recall cache.
REMOTE_BACKENDS = frozenset({"supermemory"})
# Turns stored within this long of the last write share its next transaction (turn_batcher.py).
STORE_LINGER_S = 0.02
SEARCH_HEADROOM = 5  # fetch a few more than top_k so dropping duplicates still fills the block
_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]+")


@dataclass
class Recall:
    memories_injected: int = 0
    error: str | None = None  # short reason, e.g. "timeout after 300 ms", "backend error: ..."
    user_text: str | None = None  # the new user message (for remembering), None if no recall
    modified: bool = False  # body was changed in place


def _short_reason(exc: BaseException) -> str:
    """A one-line, secret-free, header-safe reason for a backend failure."""
    detail = _HEADER_UNSAFE.sub(" ", redact_prefix(str(exc), 120))[:120].strip()
    name = type(exc).__name__
    return f"backend error: {name}: {detail}" if detail else f"backend error: {name}"


def _stored_parts(user: str, assistant: str) -> tuple[str, str]:
    """The redacted parts of a turn, as much of each as a stored turn keeps (turn_text.py)."""
    return redact_prefix(user, MAX_PART_CHARS), redact_prefix(assistant, MAX_PART_CHARS)


class MemoryService:
    """Builds backends lazily from the config; a `backend` given here serves every project."""

    def __init__(
        self,
        config: Config,
        paths: Paths,
        backend: MemoryBackend | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_pending: int = MAX_PENDING_STORES,
        cache: RecallCache | None = None,
        embed: bool = False,
    ) -> None:
        """`embed`: local backends recall by meaning too (the daemon; never a CLI command)."""
        self._config = config
        self._embed = embed
        self._paths = paths
        self._cache = cache
        self._override = self._cached(backend) if backend is not None else None
        self._http_client = http_client
        self._backends: dict[str, MemoryBackend] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._max_pending = max_pending
        self.dropped_stores = 0
        self.failed_stores = 0

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded config from the next request on (backends are kept)."""
        self._config = config

    # -- backends ---------------------------------------------------------------------------

    def warm(self) -> None:
        """Build the configured backends now, so a local model loads before the first recall."""
        self.backend_for(self._config.memory)
        for project in self._config.projects:
            self.backend_for(self._config.memory_for(project))

    def backend_for(self, settings: MemoryConfig) -> MemoryBackend | None:
        if settings.backend == "none":
            return None
        if self._override is not None:
            return self._override
        backend = self._backends.get(settings.backend)
        if backend is None:
            backend = self._cached(self._build(settings))
            self._backends[settings.backend] = backend
        return backend

    def _cached(self, backend: MemoryBackend) -> MemoryBackend:
        """A remote backend behind the Redis recall cache, when there is one."""
        if self._cache is None or backend.name not in REMOTE_BACKENDS:
            return backend
        from memproxy_cli.memory.cached_backend import CachedBackend

        return CachedBackend(backend, self._cache)

    def _build(self, settings: MemoryConfig) -> MemoryBackend:
        if settings.backend == "supermemory":
            from memproxy_cli.memory.supermemory import SupermemoryBackend

            sm = self._config.memory.supermemory
            return SupermemoryBackend(
                api_key=resolve_secret(sm.api_key),
                base_url=sm.base_url,
                http_client=self._http_client,
            )
        from pathlib import Path

        from memproxy_cli.memory.local import LocalMemoryBackend

        local = self._config.memory.local
        path = Path(local.path).expanduser() if local.path else self._paths.memory_db
        return LocalMemoryBackend(
            path,
            half_life_days=local.recency_half_life_days,
            store_linger_s=STORE_LINGER_S,
            embed=self._embed and local.embeddings,
        )

    # -- recall -----------------------------------------------------------------------------

    async def recall(
        self, dialect: Dialect, body: dict[str, Any], scope: str, project: str | None
    ) -> Recall:
        """Search and inject memories into `body` in place; never raises, never over budget."""
        settings = self._config.memory_for(project)
        backend = self.backend_for(settings)
        if backend is None:
            return Recall()
        conversation = dialect.conversation(body)
        if is_background_call(conversation):
            return Recall()
        user_text = new_user_text(conversation)
        if user_text is None:
            return Recall()
        result = Recall(user_text=user_text)
        if settings.top_k == 0 or settings.max_chars == 0:
            return result
        query = build_query(conversation, settings.query_strategy, settings.n)
        budget_ms = settings.recall_timeout_ms
        try:
            found = await asyncio.wait_for(
                backend.search(scope, query, settings.top_k + SEARCH_HEADROOM),
                budget_ms / 1000,
            )
        except TimeoutError:
            result.error = f"timeout after {budget_ms} ms"
        except Exception as exc:
            result.error = _short_reason(exc)
        if result.error:
            log.warning("memory recall failed for scope %r: %s", scope, result.error)
            return result
        self._inject(dialect, body, conversation, found, settings, result)
        return result

    def _inject(
        self,
        dialect: Dialect,
        body: dict[str, Any],
        conversation: Conversation,
        found: list[Memory],
        settings: MemoryConfig,
        result: Recall,
    ) -> None:
        block, count = render_block(
            drop_present(found, conversation), settings.top_k, settings.max_chars
        )
        if count:
            dialect.inject(body, block, settings.injection_strategy)
            result.memories_injected = count
            result.modified = True

    # -- remember ---------------------------------------------------------------------------

    def remember(
        self,
        scope: str,
        project: str | None,
        user_text: str,
        assistant_text: str,
        model: str | None,
        request_id: str | None,
    ) -> None:
        """Store the turn in the background; returns at once (call from the event loop)."""
        settings = self._config.memory_for(project)
        backend = self.backend_for(settings)
        if backend is None or not settings.store:
            return
        if not user_text.strip() or not assistant_text.strip():
            return
        if len(self._pending) >= self._max_pending:
            self.dropped_stores += 1
            log.warning("memory store queue full (%d); dropped a turn", self._max_pending)
            return
        turn = Turn(user=user_text, assistant=assistant_text, model=model, request_id=request_id)
        task = asyncio.get_running_loop().create_task(self._store(backend, scope, turn))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(self, backend: MemoryBackend, scope: str, turn: Turn) -> None:
        # Only what is stored is redacted, in a thread: a large message must not stall the loop.
        parts = await asyncio.to_thread(_stored_parts, turn.user, turn.assistant)
        turn.user, turn.assistant = parts
        try:
            await backend.add(scope, turn)
        except Exception as exc:
            self.failed_stores += 1
            log.warning("memory store failed for scope %r: %s", scope, _short_reason(exc))

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 (the gateway contract)
        """Wait up to `timeout` seconds for pending stores (shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.wait(set(self._pending))
        backends = list(self._backends.values())
        if self._override is not None:
            backends.append(self._override)
        self._backends.clear()
        for backend in backends:
            await backend.close()
        if self._cache is not None:
            await self._cache.close()
