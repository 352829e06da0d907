"""`build_app(config) -> web.Application`: state in AppKeys, resources in cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from memproxy_cli.config import Config
from memproxy_cli.gateway.credential_headers import credential_headers
from memproxy_cli.gateway.guard import guard
from memproxy_cli.gateway.observe import observability_ctx
from memproxy_cli.gateway.routes import add_routes
from memproxy_cli.gateway.state import STATE, GatewayState
from memproxy_cli.paths import Paths, get_paths
from memproxy_cli.store.rows import RequestRow
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
        middlewares=[credential_headers, guard],
        handler_args={
            "max_field_size": config.server.max_header_bytes,
            "max_line_size": config.server.max_header_bytes,
        },
    )
    app[STATE] = GatewayState.create(config, paths)
    add_routes(app)
    app.cleanup_ctx.append(observability_ctx)
    if store:
        app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_sessions_ctx)
    app.cleanup_ctx.append(_memory_ctx)
    if litellm:
        app.cleanup_ctx.append(_litellm_ctx)
    return app


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    server = state.config.server
    state.sessions = SessionManager(
        state.paths.cookie_dir,
        default_user_agent(),
        connect_timeout_s=server.connect_timeout_s,
        limit_per_host=server.max_concurrent_per_upstream,
        stats_file=state.paths.state_dir / "sessions.json",
    )
    yield
    await state.sessions.close()


async def _litellm_ctx(app: web.Application) -> AsyncIterator[None]:
    from memproxy_cli.upstream.litellm_adapter import LiteLLMAdapter

    state = app[STATE]
    state.litellm = LiteLLMAdapter()
    yield
    await state.litellm.close()


async def _memory_ctx(app: web.Application) -> AsyncIterator[None]:
    from memproxy_cli.memory.service import MemoryService

    state = app[STATE]
    memory = state.config.memory
    uses_memory = memory.backend != "none" or any(
        p.memory.backend not in (None, "none") for p in state.config.projects.values()
    )
    if not uses_memory:
        yield
        return
    http_client = None
    if state.sessions is not None and (
        memory.backend == "supermemory"
        or any(p.memory.backend == "supermemory" for p in state.config.projects.values())
    ):
        http_client = state.sessions.httpx_client_for(memory.supermemory.base_url)
    cache = None
    if state.config.redis_url:
        from memproxy_cli.budget.recall_cache import RecallCache

        cache = RecallCache(state.config.redis_url)
    service = MemoryService(
        state.config, state.paths, http_client=http_client, cache=cache, embed=True
    )
    service.warm()
    state.memory = service
    yield
    await service.drain(state.config.server.drain_timeout_s)
    await service.close()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The spend writer, prices and budgets: accounting that never runs on the event loop."""
    import asyncio

    from memproxy_cli.budget.guard import BudgetGuard
    from memproxy_cli.store.pricing import PriceTable
    from memproxy_cli.store.writer import SpendWriter

    state = app[STATE]
    config = state.config
    writer = SpendWriter(config.database_url, state.paths)
    writer.start()  # migrates the store in its own thread; rows queue until then
    state.recorder = writer
    prices = PriceTable()
    prices.load_in_background()
    state.pricing = lambda row, model: prices.cost(model, row.provider, _usage(row), state.config)
    # Always present (an in-memory check per request), so a reload can add budgets.
    guard = BudgetGuard(config, state.paths, config.redis_url)
    if config.budgets:  # counters must hold today's spend before the first request
        await asyncio.to_thread(seed_budgets, guard, state)
    await guard.start()
    state.budget = guard
    yield
    await guard.close()
    await asyncio.to_thread(writer.close, config.server.drain_timeout_s)


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


def _usage(row: RequestRow) -> dict[str, int | None]:
    return {
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
    }
