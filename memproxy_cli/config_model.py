"""The config schema: every key, its type, default and meaning (pydantic models)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from memproxy_cli.config_base import _Model
from memproxy_cli.config_file import ENV_PREFIX, resolve_secret
from memproxy_cli.config_memory import (
    MemoryConfig,
    MemoryOverride,
)
from memproxy_cli.config_routing import ModelEntry, RouterSettings, Upstreams

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_POLICY = "*"  # the projects/budgets key that applies where no project's own does


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
            "for no key, so keep it where only your Prometheus reaches (on loopback it refuses a "
            "foreign Host or Origin, as the main listener does). /metrics on the main "
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
        if overrides.get("extract_model") is False:  # off for this project
            overrides["extract_model"] = None
        return self.memory.model_copy(update=overrides) if overrides else self.memory
