"""`build_app(config) -> web.Application`: config in STATE, each resource in its own cleanup_ctx.

The contexts run in the order they are appended and end in reverse, so a resource may use any
resource set up before it: memory borrows an HTTP client from the sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from memproxy_cli.config import Config
from memproxy_cli.gateway.observe import observability_ctx
from memproxy_cli.gateway.resources import (
    BUDGETS,
    LITELLM,
    MEMORY,
    OBSERVER,
    PRICES,
    RECORDER,
    SESSIONS,
    collect,
)
from memproxy_cli.gateway.routes import add_routes
from memproxy_cli.gateway.state import STATE, GatewayState
from memproxy_cli.paths import Paths, get_paths
from memproxy_cli.upstream.sessions import SessionManager, default_user_agent

if TYPE_CHECKING:
    from memproxy_cli.budget.guard import BudgetGuard


def build_app(
    config: Config,
    paths: Paths | None = None,
    *,
    litellm: bool = True,
    store: bool = True,
) -> web.Application:
    paths = (paths or get_paths()).ensure()
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        handler_args={
            "max_field_size": config.server.max_header_bytes,
            "max_line_size": config.server.max_header_bytes,
        },
    )
    app[STATE] = GatewayState.create(config, paths)
    add_routes(app)
    app.cleanup_ctx.append(observability_ctx)
    if store:
        app.cleanup_ctx.append(_recorder_ctx)
        app.cleanup_ctx.append(_prices_ctx)
        app.cleanup_ctx.append(_budgets_ctx)
    app.cleanup_ctx.append(_sessions_ctx)
    app.cleanup_ctx.append(_memory_ctx)
    if litellm:
        app.cleanup_ctx.append(_litellm_ctx)
    app.cleanup_ctx.append(_resources_ctx)  # last: every resource is in the app by then
    return app


def apply_config(app: web.Application, config: Config) -> None:
    """Reload: swap the config-derived state and retune the resources that follow config.

    What a reload does not apply (each is fixed when its resource or the server starts; the
    list is in docs/configuration.md): `server.host`/`port`, the app's body limit (a lower
    `max_body_bytes` applies to declared lengths), `max_header_bytes`, `header_timeout_s`,
    `retry_budget_ratio`, the connection pool per upstream, `database_url`, `redis_url`,
    `observability.*`, and memory turned on when it was off for every project at start.
    """
    app[STATE].apply_config(config)
    memory = app.get(MEMORY)
    if memory is not None:
        memory.reconfigure(config)
    budgets = app.get(BUDGETS)
    if budgets is not None:
        budgets.reconfigure(config)
    observer = app.get(OBSERVER)
    if observer is not None:
        observer.metrics.models.preset(e.model_name for e in config.model_list)


async def _resources_ctx(app: web.Application) -> AsyncIterator[None]:
    """One snapshot of the resources for the request path (gateway/resources.py)."""
    app[STATE].resources = collect(app)
    yield


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    server = state.config.server
    sessions = SessionManager(
        state.paths.cookie_dir,
        default_user_agent(),
        connect_timeout_s=server.connect_timeout_s,
        limit_per_host=server.max_concurrent_per_upstream,
        stats_file=state.paths.state_dir / "sessions.json",
    )
    app[SESSIONS] = sessions
    yield
    await sessions.close()


async def _litellm_ctx(app: web.Application) -> AsyncIterator[None]:
    from memproxy_cli.upstream.litellm_adapter import LiteLLMAdapter

    adapter = LiteLLMAdapter()
    app[LITELLM] = adapter
    yield
    await adapter.close()


async def _memory_ctx(app: web.Application) -> AsyncIterator[None]:
    """The memory service, when memory is on; a service put in the app beforehand is used as
    it is (its owner closes it)."""
    from memproxy_cli.memory.service import MemoryService

    state = app[STATE]
    memory = state.config.memory
    uses_memory = memory.backend != "none" or any(
        p.memory.backend not in (None, "none") for p in state.config.projects.values()
    )
    if MEMORY in app or not uses_memory:
        yield
        return
    http_client = None
    if memory.backend == "supermemory" or any(
        p.memory.backend == "supermemory" for p in state.config.projects.values()
    ):
        http_client = app[SESSIONS].httpx_client_for(memory.supermemory.base_url)
    cache = None
    if state.config.redis_url:
        from memproxy_cli.budget.recall_cache import RecallCache

        cache = RecallCache(state.config.redis_url)
    service = MemoryService(
        state.config, state.paths, http_client=http_client, cache=cache, embed=True
    )
    service.warm()
    from memproxy_cli.gateway.extract_calls import GatewayExtractor

    service.use_extractor(GatewayExtractor(app))  # used where memory.extract_model is set
    app[MEMORY] = service
    yield
    await service.drain(state.config.server.drain_timeout_s)
    await service.close()


async def _recorder_ctx(app: web.Application) -> AsyncIterator[None]:
    """The spend writer: rows are written in its own thread, never on the event loop."""
    from memproxy_cli.store.writer import SpendWriter

    state = app[STATE]
    writer = SpendWriter(state.config.database_url, state.paths)
    writer.start()  # migrates the store in its own thread; rows queue until then
    app[RECORDER] = writer
    yield
    await asyncio.to_thread(writer.close, state.config.server.drain_timeout_s)


async def _prices_ctx(app: web.Application) -> AsyncIterator[None]:
    from memproxy_cli.store.pricing import PriceTable

    prices = PriceTable()
    prices.load_in_background()
    app[PRICES] = prices
    yield


async def _budgets_ctx(app: web.Application) -> AsyncIterator[None]:
    """Always present (an in-memory check per request), so a reload can add budgets."""
    from memproxy_cli.budget.guard import BudgetGuard

    state = app[STATE]
    config = state.config
    guard = BudgetGuard(config, state.paths, config.redis_url)
    if config.budgets:  # counters must hold today's spend before the first request
        await asyncio.to_thread(seed_budgets, guard, state)
    await guard.start()
    app[BUDGETS] = guard
    yield
    await guard.close()


def _migrate(database_url: str | None, paths: Paths) -> None:
    from memproxy_cli.store.engine import open_engine
    from memproxy_cli.store.migrations import migrate

    engine = open_engine(database_url, paths)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def seed_budgets(guard: BudgetGuard, state: GatewayState) -> None:
    """Load today's and this month's spend from the store (blocking: run it in a thread)."""
    from memproxy_cli.store.queries import open_queries

    _migrate(state.config.database_url, state.paths)
    guard.seed_from_store(open_queries(state.config.database_url, state.paths))
