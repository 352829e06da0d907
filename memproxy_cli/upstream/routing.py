"""Model routing: which upstream serves a model, and whether it needs translation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, Literal, TypeVar

from yarl import URL

from memproxy_cli.api.family import Wire
from memproxy_cli.config import Config, ModelEntry, resolve_secret

T = TypeVar("T")
Kind = Literal["passthrough", "litellm", "echo", "edge"]
ECHO_MODEL = "memproxy/echo"

# Providers whose wire format is the OpenAI chat API or the Anthropic Messages API.
_OPENAI_COMPATIBLE = frozenset(
    {"openai", "text-completion-openai", "hosted_vllm", "openai_like", "lm_studio", "ollama_chat"}
)
_ANTHROPIC_NATIVE = frozenset({"anthropic"})
_OPENAI_NAMES = re.compile(r"^(gpt-|o\d|chatgpt-|ft:gpt-|davinci|babbage|text-embedding-)")
_ANTHROPIC_NAMES = re.compile(r"^claude-")
# A model name a request may put into an upstream URL path (configured names come from config).
_URL_SAFE_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(?<!\.)")
_GEMINI_NAMES = re.compile(r"^gemini-")


@dataclass(frozen=True, slots=True)
class Route:
    """Where one model's requests go."""

    kind: Kind
    model: str  # the name the client asked for
    provider: str  # openai | anthropic | echo | gemini | ...
    upstream_model: str = ""  # the name sent upstream
    base_url: str = ""  # provider base, e.g. https://api.openai.com/v1
    api_key: str | None = None  # from config/env; None means the caller's credentials
    configured: bool = False
    key_configured: bool = False  # model_list names an api_key: it alone is sent, even if unset
    custom_base: bool = False  # model_list names an api_base: no daemon env key goes there
    litellm_model: str = ""  # provider-prefixed name for the LiteLLM SDK
    litellm_extra: dict[str, Any] = field(default_factory=dict)

    def endpoint_url(self, path: str) -> str:
        """The upstream URL for an API path such as /chat/completions or /messages."""
        return join_base(self.base_url, self.provider, path)


class ByModel(Generic[T]):
    """What was worked out for a (model, API) pair; bounded, since model names come from
    clients: a flood of made-up names empties it rather than growing it."""

    MAX = 4096

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], T] = {}

    def get(self, model: str, api: Wire, build: Callable[[str, Wire], T]) -> T:
        key = (model, api)
        try:
            return self._found[key]
        except KeyError:
            pass
        if len(self._found) >= self.MAX:
            self._found.clear()
        found = self._found[key] = build(model, api)
        return found


@lru_cache(maxsize=256)
def join_base(base: str, provider: str, path: str) -> str:
    """Join a provider base and an API path, adding /v1 when the base carries no path."""
    url = URL(base)
    prefix = url.path.rstrip("/")
    if provider == "anthropic" and prefix.endswith("/v1"):
        prefix = prefix[: -len("/v1")]
    if provider == "gemini":
        prefix = prefix or "/v1beta"
    elif provider == "anthropic" or not prefix:
        prefix += "/v1"
    return str(url.with_path(prefix + path, encoded=False))


def provider_of(model: str) -> tuple[str, str]:
    """(provider, bare model) for `provider/model` or a bare, recognisable model name."""
    if "/" in model:
        provider, bare = model.split("/", 1)
        return provider, bare
    if _ANTHROPIC_NAMES.match(model):
        return "anthropic", model
    if _OPENAI_NAMES.match(model):
        return "openai", model
    if _GEMINI_NAMES.match(model):
        return "gemini", model
    return "", model


def protocol_of(provider: str) -> Wire | None:
    if provider in _OPENAI_COMPATIBLE:
        return "openai"
    if provider in _ANTHROPIC_NATIVE:
        return "anthropic"
    if provider == "gemini":
        return "gemini"
    return None


class Router:
    """Resolves a requested model name for an API family; built once per config."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._entries: dict[str, ModelEntry] = {}
        self._deployments: dict[str, list[ModelEntry]] = {}
        for entry in config.model_list:
            self._entries.setdefault(entry.model_name, entry)
            self._deployments.setdefault(entry.model_name, []).append(entry)
        self._cache: ByModel[Route | None] = ByModel()

    def always_translates(self) -> bool:
        """Whether a configured model speaks neither the OpenAI nor the Anthropic API (Gemini,
        Bedrock...): chat and Messages clients need LiteLLM for it, so it is worth loading
        before the first request rather than on it."""
        return any(
            protocol_of(provider_of(e.litellm_params.model)[0] or "openai")
            not in ("openai", "anthropic")
            for e in self._config.model_list
        )

    def model_names(self) -> list[str]:
        return [ECHO_MODEL, *self._entries]

    def deployments_of(self, model: str, api: Wire) -> list[tuple[ModelEntry, Route]]:
        """Every model_list entry named `model`, in config order, with its route."""
        return [(e, self._configured(e, api)) for e in self._deployments.get(model, ())]

    def resolve(self, model: str, api: Wire) -> Route | None:
        return self._cache.get(model, api, self._resolve)

    def _resolve(self, model: str, api: Wire) -> Route | None:
        if model == ECHO_MODEL:
            return Route(kind="echo", model=model, provider="echo", upstream_model=model)
        entry = self._entries.get(model)
        if entry is not None:
            return self._configured(entry, api)
        return self._default(model, api)

    def _configured(self, entry: ModelEntry, api: Wire) -> Route:
        params = entry.litellm_params
        provider, bare = provider_of(params.model)
        provider = provider or "openai"
        protocol = protocol_of(provider)
        base = params.api_base or self._default_base(protocol)
        if base and protocol == "gemini":
            base = versioned_gemini_base(base)
        extra = {
            k: v for k, v in (params.model_extra or {}).items() if k not in {"model", "api_base"}
        }
        kind: Kind = "passthrough" if protocol == api and base else "litellm"
        return Route(
            kind=kind,
            model=entry.model_name,
            provider=provider,
            upstream_model=bare,
            base_url=base or "",
            api_key=resolve_secret(params.api_key),
            configured=True,
            key_configured=params.api_key is not None,
            custom_base=params.api_base is not None,
            litellm_model=f"{provider}/{bare}",
            litellm_extra=extra,
        )

    def _default(self, model: str, api: Wire) -> Route | None:
        provider, bare = provider_of(model)
        protocol = protocol_of(provider)
        if protocol is None:
            return None
        if protocol == "gemini" and not _URL_SAFE_MODEL.fullmatch(bare):
            return None  # Gemini names the model in the URL path: no `..`, `/`, `?` or `%`
        kind: Kind = "passthrough" if protocol == api else "litellm"
        return Route(
            kind=kind,
            model=model,
            provider=provider,
            upstream_model=bare,
            base_url=self._default_base(protocol) or "",
            litellm_model=f"{provider}/{bare}",
        )

    def default_route(self, api: Wire) -> Route | None:
        """Where a request that names no model goes (e.g. a stored OpenAI response)."""
        base = self._default_base(api)
        if not base:
            return None
        return Route(kind="passthrough", model="", provider=api, base_url=base)

    def _default_base(self, protocol: Wire | None) -> str | None:
        if protocol == "openai":
            return self._config.upstreams.openai
        if protocol == "anthropic":
            return self._config.upstreams.anthropic
        if protocol == "gemini":
            return versioned_gemini_base(self._config.upstreams.gemini)
        return None


def versioned_gemini_base(base: str) -> str:
    """A Gemini base with its API version (`/v1beta` when it names none), the form LiteLLM's
    gemini provider expects as api_base and passthrough joins `/models/...` to."""
    url = URL(base)
    if url.path.rstrip("/"):
        return base.rstrip("/")
    return str(url.with_path("/v1beta"))
