"""Deployments of a model: the `model_list` entries that serve it, and its fallbacks.

Several `model_list` entries with one `model_name` are deployments of that model; a model
without an entry has one implicit deployment. Which deployment serves a call, and which are
cooling down, is `upstream/health.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from memproxy_cli.api.family import Wire
from memproxy_cli.config import Config
from memproxy_cli.upstream.routing import ByModel, Route, Router
from memproxy_cli.upstream.sessions import origin_of


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model is served: a route with its share of the traffic and its limits."""

    id: str  # "gpt-4o#1" for the second model_list entry of gpt-4o; the model name otherwise
    route: Route
    weight: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    origin: str = ""
    upstream: str = ""  # provider model and host, for rows and the CLI (never a key)


def deployment_for(
    route: Route,
    id_: str | None = None,
    weight: float | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
) -> Deployment:
    origin = origin_of(route.base_url) if route.base_url else ""
    host = origin.split("://", 1)[-1]
    name = route.litellm_model or route.model
    return Deployment(
        id=id_ or route.model,
        route=route,
        weight=weight,
        rpm=rpm,
        tpm=tpm,
        origin=origin,
        upstream=f"{name}@{host}" if host else name,
    )


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """A model's deployments and the models to turn to when they fail."""

    model: str
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...] = ()
    context_fallbacks: tuple[str, ...] = ()

    @property
    def primary(self) -> Route:
        return self.deployments[0].route

    @property
    def has_alternatives(self) -> bool:
        """Whether there is somewhere else to send a call this model's deployment failed."""
        return len(self.deployments) > 1 or bool(self.fallbacks)


class ModelGroups:
    """Groups of deployments per (model, API), built from one config and cached."""

    def __init__(self, config: Config, router: Router) -> None:
        self._router = router
        self._settings = config.router_settings
        self._cache: ByModel[ModelGroup | None] = ByModel()

    def group(self, model: str, api: Wire) -> ModelGroup | None:
        return self._cache.get(model, api, self._build)

    def _build(self, model: str, api: Wire) -> ModelGroup | None:
        configured = self._router.deployments_of(model, api)
        if configured:
            deployments = tuple(
                deployment_for(
                    route,
                    f"{model}#{i}",
                    entry.litellm_params.weight,
                    entry.litellm_params.rpm,
                    entry.litellm_params.tpm,
                )
                for i, (entry, route) in enumerate(configured)
            )
        else:
            route = self._router.resolve(model, api)
            if route is None:
                return None
            deployments = (deployment_for(route),)
        settings = self._settings
        return ModelGroup(
            model=model,
            deployments=deployments,
            fallbacks=settings.fallbacks_for(model),
            context_fallbacks=settings.context_fallbacks_for(model),
        )


def key_tag(key: str | None) -> str:
    """A short, one-way tag of a caller's key: its cooldown scope (never the key itself)."""
    if not key:
        return ""
    return hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
