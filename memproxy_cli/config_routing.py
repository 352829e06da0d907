"""Config of models and where they go: `model_list` entries, `router_settings`, `upstreams`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from memproxy_cli.config_base import _Model


class LiteLLMParams(_Model):
    model: str = Field(
        description="Provider model, LiteLLM style (openai/gpt-4o-mini, ollama/llama3.1)."
    )
    api_base: str | None = Field(
        None,
        description=(
            "Base URL of the upstream (default: the provider's); the daemon's own "
            "OPENAI_API_KEY / ANTHROPIC_API_KEY is never sent to a base set here."
        ),
    )
    api_key: str | None = Field(
        None,
        description=(
            "Upstream key; use os.environ/NAME. When set, it is the only key sent to this "
            "entry (none at all when the variable is unset). Unset: the caller's own credentials."
        ),
    )
    weight: float | None = Field(
        None,
        ge=0,
        description=(
            "Share of the model's traffic this deployment gets under simple-shuffle, relative "
            "to the other deployments of the same model_name (as in LiteLLM: once one has a "
            "weight, one without gets none while a weighted one is healthy)."
        ),
    )
    rpm: int | None = Field(
        None,
        gt=0,
        description=(
            "Requests per minute this deployment may take; past it, others (or fallbacks) "
            "serve. Also its simple-shuffle share when no deployment has a weight."
        ),
    )
    tpm: int | None = Field(
        None,
        gt=0,
        description=(
            "Tokens (prompt and completion) per minute this deployment may use; past it, "
            "others serve. Also its share when no deployment has a weight or rpm."
        ),
    )


class ModelEntry(_Model):
    model_name: str = Field(description="The model name clients ask for.")
    litellm_params: LiteLLMParams = Field(description="Where and how that model is served.")


ModelFallbacks = list[dict[str, list[str]]]


class RouterSettings(_Model):
    """How requests spread over a model's deployments and where they go when one fails."""

    routing_strategy: Literal["simple-shuffle", "least-busy"] = Field(
        "simple-shuffle",
        description=(
            "How a deployment of a model is chosen among the healthy ones: simple-shuffle "
            "(random, by weight, else rpm, else tpm) or least-busy (fewest calls in flight)."
        ),
    )
    num_retries: int | None = Field(
        None,
        ge=0,
        le=10,
        description=(
            "Retries of a model before its fallbacks, each on another healthy deployment when "
            "there is one (unset: server.max_retries); all within server.retry_budget_ratio."
        ),
    )
    fallbacks: ModelFallbacks = Field(
        default_factory=list,
        description=(
            "Models tried in order when every deployment of a model failed before any byte "
            'reached the client (connect error, timeout, 429, 5xx), e.g. [{"gpt-4o": '
            '["claude-sonnet"]}]; translated through LiteLLM when the API differs.'
        ),
    )
    context_window_fallbacks: ModelFallbacks = Field(
        default_factory=list,
        description=(
            "Models tried in order when a model's upstream says the prompt is too long for its "
            'context window, e.g. [{"gpt-4o-mini": ["gpt-4o"]}].'
        ),
    )
    allowed_fails: int = Field(
        3,
        ge=0,
        description=(
            "Failures a deployment may have within a minute before it cools down (a 429 cools "
            "it at once); only for models with another deployment or a fallback to turn to."
        ),
    )
    cooldown_time: float = Field(
        5.0,
        ge=0,
        description=(
            "Seconds a failing deployment is left out (0: never). An upstream's Retry-After "
            "overrides it, for that deployment and caller key only, with or without others."
        ),
    )

    def fallbacks_for(self, model: str) -> tuple[str, ...]:
        return _listed(self.fallbacks, model)

    def context_fallbacks_for(self, model: str) -> tuple[str, ...]:
        return _listed(self.context_window_fallbacks, model)


def _listed(mapping: ModelFallbacks, model: str) -> tuple[str, ...]:
    found: list[str] = []
    for item in mapping:
        for name in item.get(model, ()):
            if name != model and name not in found:
                found.append(name)
    return tuple(found)


class Upstreams(_Model):
    """Default provider bases for models without a model_list entry."""

    openai: str = Field(
        "https://api.openai.com",
        description=(
            "Base URL for gpt-*/o* models without a model_list entry; a caller that sends no key "
            "gets the daemon's OPENAI_API_KEY here (and only here)."
        ),
    )
    anthropic: str = Field(
        "https://api.anthropic.com",
        description=(
            "Base URL for claude-* models without a model_list entry; a caller that sends no key "
            "gets the daemon's ANTHROPIC_API_KEY here (and only here)."
        ),
    )
    gemini: str = Field(
        "https://generativelanguage.googleapis.com",
        description="Base URL for gemini-* models without a model_list entry (the native "
        "Gemini API; `/v1beta` is added when the URL has no path).",
    )
