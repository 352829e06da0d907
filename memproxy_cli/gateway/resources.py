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

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Resources:
    """Every resource of an app, each None where absent: one read per request, not one
    app lookup per resource. A resource stays in the app once its context has started
    (closing it does not remove it), so a snapshot taken once start-up has finished says
    what `app.get` would say for every request after it."""

    sessions: SessionManager | None = None
    recorder: SpendWriter | None = None
    prices: PriceTable | None = None
    budgets: BudgetGuard | None = None
    memory: MemoryService | None = None
    litellm: LiteLLMAdapter | None = None
    observer: Observer | None = None


def collect(app: web.Application) -> Resources:
    """The app's resources as they are now."""
    return Resources(
        sessions=app.get(SESSIONS),
        recorder=app.get(RECORDER),
        prices=app.get(PRICES),
        budgets=app.get(BUDGETS),
        memory=app.get(MEMORY),
        litellm=app.get(LITELLM),
        observer=app.get(OBSERVER),
    )


def resources_of(app: web.Application) -> Resources:
    """The snapshot taken when start-up finished (gateway/app.py), else the resources now."""
    found = app[STATE].resources
    return found if found is not None else collect(app)


def upstream_deps(app: web.Application) -> UpstreamDeps:
    """What a transport needs, as the app holds it now: built again when a reload has swapped
    the config, else the same object for every call."""
    state = app[STATE]
    deps = state.upstream_deps
    if deps is None or deps.config is not state.config:
        deps = UpstreamDeps(state.config, app[SESSIONS], state.limiter, state.retry_budget)
        state.upstream_deps = deps
    return deps
