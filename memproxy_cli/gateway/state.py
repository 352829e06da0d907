"""The gateway's config-derived state, swapped whole on reload; resources: gateway/resources.py."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from memproxy_cli.config import Config
from memproxy_cli.gateway.identity import CompiledMappings
from memproxy_cli.local_token import sync_local_token
from memproxy_cli.paths import Paths
from memproxy_cli.upstream.deployments import ModelGroups
from memproxy_cli.upstream.health import DeploymentHealth
from memproxy_cli.upstream.limits import OriginLimiter, RetryBudget
from memproxy_cli.upstream.routing import Router

if TYPE_CHECKING:
    from memproxy_cli.gateway.resources import Resources
    from memproxy_cli.upstream.transport import UpstreamDeps


@dataclass
class GatewayState:
    """What one running gateway derives from its config, and its counters."""

    config: Config
    paths: Paths
    router: Router
    limiter: OriginLimiter
    retry_budget: RetryBudget
    mappings: CompiledMappings
    groups: ModelGroups  # a model's deployments and fallbacks, per config
    deployments: DeploymentHealth  # cooldowns and use of deployments, across reloads
    started_at: float = field(default_factory=time.time)
    port_projects: dict[int, str] = field(default_factory=dict)  # project listener ports
    main_port: int | None = None  # set by the daemon once it listens
    local_token: str | None = None  # required on loopback listeners when server.local_token
    inflight: int = 0
    requests_total: int = 0
    resources: Resources | None = None  # the app's resources, once its start-up has finished
    upstream_deps: UpstreamDeps | None = None  # for the current config (gateway/resources.py)

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
        """Swap in a new config (reload); in-flight requests keep the objects they hold.
        `gateway.app.apply_config` also retunes the resources that follow the config."""
        self.config = config
        self.router = Router(config)
        self.groups = ModelGroups(config, self.router)
        self.deployments.settings = config.router_settings
        self.mappings = CompiledMappings.from_config(config.user_id_mappings)
        self.local_token = sync_local_token(config.server.local_token, self.paths)
        self.limiter.cap = config.server.max_concurrent_per_upstream


STATE: web.AppKey[GatewayState] = web.AppKey("memproxy_state", GatewayState)
