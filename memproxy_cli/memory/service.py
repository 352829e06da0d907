"""The one object the gateway calls: recall before the upstream call, remember after it."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memproxy_cli.config import Config, MemoryConfig, resolve_secret
from memproxy_cli.memory.backend import Memory, MemoryBackend, Turn
from memproxy_cli.memory.background import is_background_call
from memproxy_cli.memory.capture import Leg, leg_of
from memproxy_cli.memory.capture_stats import FILE_NAME, CaptureStats, add_counts
from memproxy_cli.memory.capture_worker import (
    Answer,
    CaptureWorker,
    Ending,
    Outcome,
    Stored,
    prepare_turn,
)
from memproxy_cli.memory.conversation import Conversation, Dialect
from memproxy_cli.memory.extract import Extractor, is_distilled
from memproxy_cli.memory.extract_queue import MAX_PENDING_EXTRACTIONS, Extraction
from memproxy_cli.memory.redact import redact_prefix
from memproxy_cli.memory.strategies import build_query, drop_present, render_block
from memproxy_cli.paths import Paths
from memproxy_cli.store.engine import is_postgres

if TYPE_CHECKING:
    import httpx

    from memproxy_cli.budget.recall_cache import RecallCache

log = logging.getLogger("memproxy.memory")

MAX_PENDING_STORES = 256
# Backends every instance shares: only these are put behind the Redis recall cache.
REMOTE_BACKENDS = frozenset({"supermemory", "postgres"})
# Backends that keep a turn's metadata and forget a turn's facts with it (memory/extract.py):
# SQLite, and team memory in PostgreSQL. Supermemory distils documents itself.
FACT_BACKENDS = frozenset({"local", "postgres"})
# Turns stored within this long of the last write share its next transaction (turn_batcher.py).
STORE_LINGER_S = 0.02
SEARCH_HEADROOM = 5  # fetch a few more than top_k so dropping duplicates still fills the block
STATS_FLUSH_S = 2.0  # skip counters reach their file this long after they change
_NO_HEADERS: Mapping[str, str] = {}
_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]+")


def in_database(config: Config, settings: MemoryConfig) -> bool:
    """Whether the local backend keeps its memories in the shared PostgreSQL `database_url`
    (team memory) rather than in this instance's SQLite file."""
    return settings.backend == "local" and is_postgres(config.database_url)


@dataclass
class Recall:
    memories_injected: int = 0
    error: str | None = None  # short reason, e.g. "timeout after 300 ms", "backend error: ..."
    user_text: str | None = None  # the human's new message, chrome removed; None if none
    modified: bool = False  # body was changed in place
    leg: Leg | None = None  # where the request sits in its agent loop (capture.py)
    client: str | None = None


def _short_reason(exc: BaseException) -> str:
    """A one-line, secret-free, header-safe reason for a backend failure."""
    detail = _HEADER_UNSAFE.sub(" ", redact_prefix(str(exc), 120))[:120].strip()
    name = type(exc).__name__
    return f"backend error: {name}: {detail}" if detail else f"backend error: {name}"


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
        self._capture = CaptureWorker(self._captured)
        self.loops = self._capture.tracker
        self.stats = CaptureStats()
        self._stats_flush: asyncio.TimerHandle | None = None
        self.extraction: Extraction | None = None

    def use_extractor(
        self, extractor: Extractor, max_pending: int = MAX_PENDING_EXTRACTIONS
    ) -> None:
        """Distil turns with `memory.extract_model` through `extractor` (the gateway's)."""
        self.extraction = Extraction(extractor, max_pending)

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
        local = self._config.memory.local
        if in_database(self._config, settings):  # team memory: in the shared database
            from memproxy_cli.memory.postgres import PostgresMemoryBackend

            assert self._config.database_url is not None
            return PostgresMemoryBackend(
                self._config.database_url,
                half_life_days=local.recency_half_life_days,
                embed=self._embed and local.embeddings,
            )
        from memproxy_cli.memory.local import LocalMemoryBackend

        path = self._paths.local_memory(local.path)
        return LocalMemoryBackend(
            path,
            half_life_days=local.recency_half_life_days,
            store_linger_s=STORE_LINGER_S,
            embed=self._embed and local.embeddings,
        )

    # -- recall -----------------------------------------------------------------------------

    async def recall(
        self,
        dialect: Dialect,
        body: dict[str, Any],
        scope: str,
        project: str | None,
        headers: Mapping[str, str] = _NO_HEADERS,
        client: str | None = None,
    ) -> Recall:
        """Place the request in its agent loop (capture.py), then search and inject memories
        into `body` in place when it carries the human's new message; never raises, never over
        budget. `headers` must look names up lower case (aiohttp's ignore case)."""
        settings = self._config.memory_for(project)
        backend = self.backend_for(settings)
        if backend is None:
            return Recall()
        conversation = dialect.conversation(body)
        if is_background_call(conversation):
            self._skip(scope, "background")
            return Recall()
        leg = leg_of(conversation, headers, scope)
        result = Recall(leg=leg, client=client)
        if leg is None or not leg.human_shaped:
            return result
        if leg.subagent and not settings.recall_into_subagents:
            return result
        human = self.loops.human_words(leg)
        if human is None:
            return result
        result.user_text = human
        if settings.top_k == 0 or settings.max_chars == 0:
            return result
        query = build_query(conversation, settings.query_strategy, settings.n, human)
        budget_ms = settings.recall_timeout_ms
        k = settings.top_k + SEARCH_HEADROOM
        if settings.extract_model:  # turns facts were drawn from are found, then left out
            k += settings.top_k
        try:
            found = await asyncio.wait_for(backend.search(scope, query, k), budget_ms / 1000)
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
        found = [m for m in found if not is_distilled(m.metadata)]
        block, count = render_block(
            drop_present(found, conversation), settings.top_k, settings.max_chars
        )
        if count:
            dialect.inject(body, block, settings.injection_strategy)
            result.memories_injected = count
            result.modified = True

    # -- remember ---------------------------------------------------------------------------

    def finish(
        self,
        recall: Recall,
        scope: str,
        project: str | None,
        status: str,
        answer: Answer,
        echo: bool,
        model: str | None,
        request_id: str | None,
        user_id: str | None = None,
    ) -> None:
        """After the response: hand the leg and its answer to the capture thread, which stores
        the turn when this answer ended the human's agent loop (capture_worker.py)."""
        leg = recall.leg
        if leg is None:
            return
        ending = Ending(
            leg, project, status, answer, echo, model, request_id, recall.client, user_id
        )
        if not self._capture.submit(ending):
            self.dropped_stores += 1
            log.warning("memory capture queue full; dropped a request's turn")

    def _captured(self, outcomes: list[Outcome]) -> None:
        """On the event loop: what the capture thread made of the answered legs."""
        for outcome in outcomes:
            if isinstance(outcome, Stored):
                self.store(
                    outcome.scope, outcome.project, outcome.turn, outcome.user_id, prepared=True
                )
            else:
                self._skip(outcome.scope, outcome.reason)

    def remember(
        self,
        scope: str,
        project: str | None,
        user_text: str,
        assistant_text: str,
        model: str | None,
        request_id: str | None,
    ) -> None:
        """Store one exchange in the background; returns at once (call from the event loop)."""
        turn = Turn(user=user_text, assistant=assistant_text, model=model, request_id=request_id)
        self.store(scope, project, turn)

    def store(
        self,
        scope: str,
        project: str | None,
        turn: Turn,
        user_id: str | None = None,
        prepared: bool = False,
    ) -> None:
        """Store `turn` in the background, as facts when `extract_model` is set; returns at
        once (call from the event loop). `prepared`: already redacted and keyed
        (capture_worker.prepare_turn)."""
        settings = self._config.memory_for(project)
        backend = self.backend_for(settings)
        if backend is None:
            return
        if not settings.store:
            self._skip(scope, "store_off")
            return
        if not turn.user.strip() or not turn.assistant.strip():
            return
        if len(self._pending) >= self._max_pending:
            self.dropped_stores += 1
            log.warning("memory store queue full (%d); dropped a turn", self._max_pending)
            return
        extract = None
        model = settings.extract_model
        extraction = self.extraction
        if model and extraction and backend.name in FACT_BACKENDS and extraction.reserve():
            extract = (extraction, model, project, user_id)
            if turn.created_at is None:  # its facts take the time of the turn
                turn.created_at = time.time()
        task = asyncio.get_running_loop().create_task(
            self._store(backend, scope, turn, prepared, extract)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(
        self,
        backend: MemoryBackend,
        scope: str,
        turn: Turn,
        prepared: bool,
        extract: tuple[Extraction, str, str | None, str | None] | None = None,
    ) -> None:
        """`extract`: where the turn's place in the extraction queue was reserved, and for
        which model, project and user."""
        try:
            # Only what is stored is redacted, in a thread: a large message must not stall the
            # loop. The model that extracts facts gets the redacted turn too.
            if not prepared:
                await asyncio.to_thread(prepare_turn, turn)
            if extract is not None:
                extraction, model, project, user_id = extract
                facts = await extraction.facts_for(model, turn, scope, project, user_id)
                if facts:
                    await extraction.store(backend, scope, turn, facts, model)
                    return
            await backend.add(scope, turn)
        except Exception as exc:
            self.failed_stores += 1
            log.warning("memory store failed for scope %r: %s", scope, _short_reason(exc))
        finally:
            if extract is not None:
                extract[0].release()

    # -- skip counters ----------------------------------------------------------------------

    def _skip(self, scope: str, reason: str) -> None:
        self.stats.skip(scope, reason)
        if self._stats_flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._stats_flush = loop.call_later(STATS_FLUSH_S, self._flush_soon)

    def _flush_soon(self) -> None:
        self._stats_flush = None
        task = asyncio.get_running_loop().create_task(self.flush_stats())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush_stats(self) -> None:
        """Add the skip counts since the last flush to the stats file."""
        if not self.stats.dirty:
            return
        counts = self.stats.take()
        try:
            await asyncio.to_thread(add_counts, self._paths.data_dir / FILE_NAME, counts)
        except OSError as exc:
            log.warning("memory: could not write capture stats: %s", exc)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 (the gateway contract)
        """Wait up to `timeout` seconds for the capture thread and pending stores (shutdown)."""
        await self._capture.flush(timeout)
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)

    async def close(self) -> None:
        await self._capture.close()
        if self._stats_flush is not None:
            self._stats_flush.cancel()
            self._stats_flush = None
        await self.flush_stats()
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
