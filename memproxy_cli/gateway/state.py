"""Typed application state: everything the handlers share, in web.AppKeys."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from memproxy_cli.config import Config
from memproxy_cli.gateway.identity import CompiledMappings
from memproxy_cli.local_token import sync_local_token
from memproxy_cli.paths import Paths
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.upstream.deployments import DeploymentHealth, ModelGroups
from memproxy_cli.upstream.limits import OriginLimiter, RetryBudget
from memproxy_cli.upstream.routing import Router

if TYPE_CHECKING:
    from memproxy_cli.observability.observer import Observer
    from memproxy_cli.upstream.litellm_adapter import LiteLLMAdapter
    from memproxy_cli.upstream.sessions import SessionManager


class Recorder(Protocol):
    """Takes one row per request; must never block or raise."""

    def submit(self, row: RequestRow) -> None: ...


@dataclass
class GatewayState:
    """The live configuration and shared resources of one running gateway."""

    config: Config
    paths: Paths
    router: Router
    limiter: OriginLimiter
    retry_budget: RetryBudget
    mappings: CompiledMappings
    groups: ModelGroups  # a model's deployments and fallbacks, per config
    deployments: DeploymentHealth  # cooldowns and use of deployments, across reloads
    started_at: float = field(default_factory=time.time)
    recorder: Recorder | None = None
    memory: Any = None  # memory.service.MemoryService when memory is on
    budget: Any = None  # budget.BudgetGuard when budgets are configured
    pricing: Callable[[RequestRow, str], float | None] | None = None
    sessions: SessionManager | None = None
    litellm: LiteLLMAdapter | None = None
    observer: Observer | None = None  # metrics, the live view and tracing
    port_projects: dict[int, str] = field(default_factory=dict)  # project listener ports
    main_port: int | None = None  # set by the daemon once it listens
    local_token: str | None = None  # required on loopback listeners when server.local_token
    inflight: int = 0
    requests_total: int = 0

    @classmethod
    def create(cls, config: Config, paths: Paths) -> GatewayState:
        router = Router(config)
        return cls(
            config=config,
            paths=paths,
            router=router,
            groups=ModelGroups(config, router),
            deployments=DeploymentHealth(config.router_settings),
            limiter=OriginLimiter(config.server.max_concurrent_per_upstream),
            retry_budget=RetryBudget(config.server.retry_budget_ratio),
            mappings=CompiledMappings.from_config(config.user_id_mappings),
            local_token=sync_local_token(config.server.local_token, paths),
        )

    def apply_config(self, config: Config) -> None:
        """Swap in a new config (reload); in-flight requests keep the objects they hold."""
        self.config = config
        self.router = Router(config)
        self.groups = ModelGroups(config, self.router)
        self.deployments.settings = config.router_settings
        self.mappings = CompiledMappings.from_config(config.user_id_mappings)
        self.local_token = sync_local_token(config.server.local_token, self.paths)
        self.limiter.cap = config.server.max_concurrent_per_upstream
        if self.memory is not None:
            self.memory.reconfigure(config)
        if self.budget is not None:
            self.budget.reconfigure(config)
        if self.observer is not None:
            self.observer.metrics.models.preset(e.model_name for e in config.model_list)


STATE: web.AppKey[GatewayState] = web.AppKey("memproxy_state", GatewayState)
