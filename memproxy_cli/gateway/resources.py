"""The gateway's shared resources: one typed AppKey each, each owned by one cleanup_ctx.

A resource is in the app once its context has started, and gone when that context has ended.
Those that depend on configuration at start-up may be absent: `app.get(KEY)` says so.
- SESSIONS: always (upstream HTTP sessions, cookies).
- RECORDER, PRICES, BUDGETS: when the app keeps a spend store (the daemon always does).
- MEMORY: when memory is on at start-up for the gateway or any project.
- LITELLM: when the app may translate (the daemon always may).
- OBSERVER: always (metrics, the live view, tracing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from memproxy_cli.gateway.state import STATE
from memproxy_cli.upstream.transport import UpstreamDeps

if TYPE_CHECKING:
    from memproxy_cli.budget.guard import BudgetGuard
    from memproxy_cli.memory.service import MemoryService
    from memproxy_cli.observability.observer import Observer
    from memproxy_cli.store.pricing import PriceTable
    from memproxy_cli.store.writer import SpendWriter
    from memproxy_cli.upstream.litellm_adapter import LiteLLMAdapter
    from memproxy_cli.upstream.sessions import SessionManager


SESSIONS: web.AppKey[SessionManager] = web.AppKey("sessions")
RECORDER: web.AppKey[SpendWriter] = web.AppKey("recorder")
PRICES: web.AppKey[PriceTable] = web.AppKey("prices")
BUDGETS: web.AppKey[BudgetGuard] = web.AppKey("budgets")
MEMORY: web.AppKey[MemoryService] = web.AppKey("memory")
LITELLM: web.AppKey[LiteLLMAdapter] = web.AppKey("litellm")
OBSERVER: web.AppKey[Observer] = web.AppKey("observer")


def upstream_deps(app: web.Application) -> UpstreamDeps:
    """What a transport needs, as the app holds it now (a reload swaps the config)."""
    state = app[STATE]
    return UpstreamDeps(state.config, app[SESSIONS], state.limiter, state.retry_budget)
