"""The config schema: every key, its type, default and meaning (pydantic models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from memproxy_cli.config_file import ENV_PREFIX, resolve_secret

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_POLICY = "*"  # the projects/budgets key that applies where no project's own does


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ServerConfig(_Model):
    host: str = Field(
        "127.0.0.1",
        description="Address of the main listener; a non-loopback one needs master_key.",
    )
    port: int = Field(
        8764, ge=0, le=65535, description="Port of the main listener (0 picks a free one)."
    )
    master_key: str | None = Field(
        None, description="Bearer key clients must send (needed off loopback); use os.environ/NAME."
    )
    local_token: bool = Field(
        False,
        description=(
            "Require a token on loopback listeners, so other local users are kept out: the daemon "
            "writes it to local-token (mode 0600) in the state dir, `memproxy run` passes it on, "
            "`memproxy attach` prints it. Clients send it as their API key, bearer token or "
            "x-memproxy-token header; configured keys are then used upstream, never the token."
        ),
    )
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted; bigger ones get HTTP 413.",
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="Largest request line or header field accepted."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client may take to send its request headers."
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to open a connection to an upstream."
    )
    stream_idle_timeout_s: float = Field(
        300.0, gt=0, description="Seconds an upstream may stay silent mid-response."
    )
    request_timeout_s: float = Field(
        600.0, gt=0, description="Total seconds for a non-streaming upstream call."
    )
    max_concurrent_per_upstream: int = Field(
        256, gt=0, description="Upstream calls in flight per origin; more wait their turn."
    )
    drain_timeout_s: float = Field(
        30.0,
        ge=0,
        description="Seconds `memproxy down` lets in-flight requests finish before closing them.",
    )
    max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of an upstream call that failed before any byte reached the client.",
    )
    retry_budget_ratio: float = Field(
        0.2, ge=0, le=1, description="Retries allowed as a fraction of recent requests."
    )

    max_upstream_body_bytes: int = Field(
        64 * 1024 * 1024,
        gt=0,
        description="Largest non-streaming upstream response, as sent and as inflated; "
        "a bigger one ends the request with HTTP 502.",
    )
    max_upstream_event_bytes: int = Field(
        8 * 1024 * 1024,
        gt=0,
        description="Largest single SSE event an upstream may send; "
        "a bigger one ends the stream with an error event.",
    )
    max_stream_bytes: int = Field(
        512 * 1024 * 1024,
        gt=0,
        description="Most bytes one upstream stream may send in all; "
        "past it the stream ends with an error event.",
    )

    _master_key_value: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _master_key_for_public_bind(self) -> ServerConfig:
        if self.host not in LOOPBACK_HOSTS and not self.master_key:
            raise ValueError(f"binding to {self.host!r} (not loopback) requires server.master_key")
        self._master_key_value = resolve_secret(self.master_key)
        return self

    @property
    def master_key_value(self) -> str | None:
        """The key clients must send: `os.environ/NAME` resolved when the config was loaded."""
        return self._master_key_value

    def master_key_problem(self) -> str | None:
        """Why the configured master key cannot be used (None when it can, or none is set)."""
        if not self.master_key or self._master_key_value:
            return None
        if self.master_key.startswith(ENV_PREFIX):
            name = self.master_key[len(ENV_PREFIX) :]
            return (
                f"server.master_key is {self.master_key}, but ${name} is not set in the "
                "environment: export it (or remove master_key) and start again"
            )
        return "server.master_key is empty"


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


class LocalMemoryConfig(_Model):
    path: str | None = Field(
        None, description="Local backend SQLite file (default: memory.sqlite3 in the data dir)."
    )
    recency_half_life_days: float = Field(
        30.0, gt=0, description="Age at which a memory's recency boost halves in ranking."
    )
    embeddings: bool = Field(
        True,
        description=(
            "Recall by meaning as well as by words, with the packaged all-MiniLM-L6-v2 model "
            "(the daemon loads it in the background; about 135 MB of memory). false: words only."
        ),
    )


class SupermemoryConfig(_Model):
    api_key: str | None = Field(
        "os.environ/SUPERMEMORY_API_KEY",
        description="Supermemory API key (an os.environ/NAME reference).",
    )
    base_url: str = Field("https://api.supermemory.ai", description="Supermemory API base URL.")


QueryStrategy = Literal["last_user", "first_user", "all_user", "last_n"]
InjectionStrategy = Literal["system", "user_prefix", "user_suffix"]


class MemoryConfig(_Model):
    backend: Literal["local", "supermemory", "none"] = Field(
        "local",
        description="Where memories live: local (SQLite FTS5 and embeddings; in PostgreSQL, "
        "shared by every instance, when database_url is PostgreSQL), supermemory, or none (off).",
    )
    query_strategy: QueryStrategy = Field(
        "last_user",
        description="What recall searches for: last_user, first_user, all_user or last_n.",
    )
    n: int = Field(3, ge=1, description="How many recent user messages last_n uses.")
    injection_strategy: InjectionStrategy | None = Field(
        None,
        description="Where memories go: system, user_prefix, user_suffix (unset: user_suffix).",
    )
    top_k: int = Field(
        5, ge=0, le=100, description="Most memories injected per request (0 turns recall off)."
    )
    max_chars: int = Field(
        2000, ge=0, description="Most characters of memories injected per request."
    )
    recall_timeout_ms: int = Field(
        300,
        ge=1,
        description="Time budget for recall; past it the request goes on without memories.",
    )
    store: bool = Field(
        True, description="Save each turn as a memory after the response (in the background)."
    )
    recall_into_subagents: bool = Field(
        False,
        description="Inject memories into subagent conversations (started by another "
        "conversation's tool call); their prompts are never stored either way.",
    )
    extract_model: str | None = Field(
        None,
        description="A model (a model_list name or a pass-through model) that distils each "
        "stored turn into short facts in the background; the facts are recalled instead of "
        "the turn, and the call is the project's spend. Unset: turns are stored as they are.",
    )
    local: LocalMemoryConfig = Field(
        default_factory=LocalMemoryConfig, description="Settings of the local backend."
    )
    supermemory: SupermemoryConfig = Field(
        default_factory=SupermemoryConfig, description="Settings of the Supermemory backend."
    )


class MemoryOverride(_Model):
    """Per-project memory settings; unset fields inherit the global ones."""

    backend: Literal["local", "supermemory", "none"] | None = Field(
        None, description="Memory backend for this project."
    )
    query_strategy: QueryStrategy | None = Field(
        None, description="Query strategy for this project."
    )
    n: int | None = Field(None, ge=1, description="last_n count for this project.")
    injection_strategy: InjectionStrategy | None = Field(
        None, description="Injection strategy for this project."
    )
    top_k: int | None = Field(
        None, ge=0, le=100, description="Most memories injected for this project."
    )
    max_chars: int | None = Field(
        None, ge=0, description="Most characters of memories for this project."
    )
    recall_timeout_ms: int | None = Field(
        None, ge=1, description="Recall time budget for this project."
    )
    store: bool | None = Field(None, description="Whether this project's turns are stored.")
    recall_into_subagents: bool | None = Field(
        None, description="Whether this project's subagent conversations get memories."
    )
    extract_model: str | None = Field(
        None, description="The model that distils this project's turns into facts."
    )


class HeaderPattern(_Model):
    header: str = Field(description="Request header to match (case-insensitive).")
    pattern: str = Field(description="Regular expression searched in that header's value.")
    user_id: str = Field(description="User id given to requests that match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        import re

        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return v


class UserIdMappings(_Model):
    header_patterns: list[HeaderPattern] = Field(
        default_factory=list,
        description="Rules tried in order to name the user of a request without x-memory-user-id.",
    )
    default_user_id: str = Field("default", description="User id when no header or rule names one.")


class Budget(_Model):
    daily_usd: float | None = Field(
        None, ge=0, description="Spend limit per UTC day in USD; requests past it are refused."
    )
    monthly_usd: float | None = Field(
        None, ge=0, description="Spend limit per calendar month in USD."
    )


class ProjectPolicy(_Model):
    allowed_models: list[str] | None = Field(
        None, description="Models this project may call (unset: any)."
    )
    memory: MemoryOverride = Field(
        default_factory=MemoryOverride,
        description="Memory settings that override the global ones for this project.",
    )


class Pricing(_Model):
    input_cost_per_token: float = Field(0.0, ge=0, description="USD per prompt token.")
    output_cost_per_token: float = Field(0.0, ge=0, description="USD per completion token.")
    cache_read_input_token_cost: float | None = Field(
        None, ge=0, description="USD per prompt token read from the provider's cache."
    )
    cache_creation_input_token_cost: float | None = Field(
        None, ge=0, description="USD per prompt token written to the provider's cache."
    )


class ListenerConfig(_Model):
    port_range_start: int = Field(
        8765, ge=1024, le=65535, description="First port handed to attached projects."
    )
    port_range_end: int = Field(
        8964, ge=1024, le=65535, description="Last port handed to attached projects."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ListenerConfig:
        if self.port_range_end < self.port_range_start:
            raise ValueError("port_range_end must not be below port_range_start")
        return self


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Daemon log level."
    )


class ObservabilityConfig(_Model):
    otlp_endpoint: str | None = Field(
        None,
        description=(
            "OpenTelemetry collector to send spans to over OTLP/HTTP, e.g. http://127.0.0.1:4318 "
            "(/v1/traces is added). Unset: the standard OTEL_EXPORTER_OTLP_ENDPOINT or "
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variable, and no tracing without one. Needs "
            "`pip install memproxy[otel]`; read at start."
        ),
    )
    service_name: str | None = Field(
        None, description="service.name of the spans (unset: OTEL_SERVICE_NAME, else memproxy)."
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description=(
            "Also serve GET /metrics on this port of server.host, and nothing else there; it asks "
            "for no key, so keep it where only your Prometheus reaches. /metrics on the main "
            "listener stays behind the master key (or local token). Read at start."
        ),
    )


class Config(_Model):
    server: ServerConfig = Field(
        default_factory=ServerConfig,
        description="The main listener, its limits and upstream timeouts.",
    )
    model_list: list[ModelEntry] = Field(
        default_factory=list, description="Models served with explicit routing, LiteLLM format."
    )
    router_settings: RouterSettings = Field(
        default_factory=RouterSettings,
        description=(
            "Routing over several model_list entries with one model_name (its deployments): "
            "strategy, retries, fallbacks and cooldowns, with LiteLLM's names."
        ),
    )
    upstreams: Upstreams = Field(
        default_factory=Upstreams,
        description="Provider defaults for models without a model_list entry.",
    )
    memory: MemoryConfig = Field(
        default_factory=MemoryConfig, description="Long-term memory: backend, recall and injection."
    )
    user_id_mappings: UserIdMappings = Field(
        default_factory=UserIdMappings, description="How a request's user is identified."
    )
    database_url: str | None = Field(
        None,
        description="Spend store URL, e.g. postgresql+psycopg://host/db (default: local SQLite). "
        "On PostgreSQL the local memory backend keeps its memories there too (team memory).",
    )
    redis_url: str | None = Field(
        None, description="Redis shared by several instances for budgets and rate state (optional)."
    )
    budgets: dict[str, Budget] = Field(
        default_factory=dict,
        description=(
            'USD spend limits per project name; "*" is one limit shared by every request '
            "outside a project with its own entry (requests without a project included)."
        ),
    )
    projects: dict[str, ProjectPolicy] = Field(
        default_factory=dict,
        description=(
            'Policy per project name; "*" is the default policy, for every project without an '
            "entry and for requests that name no project (so leaving out x-memproxy-project "
            "does not escape allowed_models)."
        ),
    )
    pricing: dict[str, Pricing] = Field(
        default_factory=dict,
        description="USD prices per model name, over the built-in price table.",
    )
    listeners: ListenerConfig = Field(
        default_factory=ListenerConfig, description="Port range for attached projects."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Daemon logging.")
    gateway_url: str | None = Field(
        None, description="Run as an edge: forward every request to this shared team gateway."
    )
    observability: ObservabilityConfig = Field(
        default_factory=ObservabilityConfig,
        description="OpenTelemetry traces and the Prometheus /metrics endpoint.",
    )

    source: str | None = Field(None, exclude=True)

    def policy_for(self, project: str | None) -> ProjectPolicy | None:
        """The project's own policy, else the default one (`projects["*"]`), else None."""
        own = self.projects.get(project) if project else None
        return own if own is not None else self.projects.get(DEFAULT_POLICY)

    def budget_name(self, project: str | None) -> str | None:
        """The budget a request's spend counts against: the project's own, else "*"."""
        if project and project in self.budgets:
            return project
        return DEFAULT_POLICY if DEFAULT_POLICY in self.budgets else None

    def memory_for(self, project: str | None) -> MemoryConfig:
        """The memory settings in force for a project (global ones with its overrides)."""
        policy = self.policy_for(project)
        if policy is None:
            return self.memory
        overrides = policy.memory.model_dump(exclude_none=True, exclude_unset=True)
        overrides = {k: v for k, v in overrides.items() if k in MemoryOverride.model_fields}
        return self.memory.model_copy(update=overrides) if overrides else self.memory
