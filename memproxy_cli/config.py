"""Load, validate and explain the YAML config; errors name the key and the file line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from memproxy_cli.paths import get_paths

ENV_PREFIX = "os.environ/"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ConfigError(Exception):
    """A config that cannot be used; the message names the file, line and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8764, ge=0, le=65535)
    master_key: str | None = None
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    header_timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    stream_idle_timeout_s: float = Field(300.0, gt=0)
    request_timeout_s: float = Field(600.0, gt=0)
    max_concurrent_per_upstream: int = Field(256, gt=0)
    drain_timeout_s: float = Field(30.0, ge=0)
    max_retries: int = Field(2, ge=0, le=10)
    retry_budget_ratio: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _master_key_for_public_bind(self) -> ServerConfig:
        if self.host not in LOOPBACK_HOSTS and not self.master_key:
            raise ValueError(f"binding to {self.host!r} (not loopback) requires server.master_key")
        return self


class LiteLLMParams(_Model):
    model: str
    api_base: str | None = None
    api_key: str | None = None


class ModelEntry(_Model):
    model_name: str
    litellm_params: LiteLLMParams


class Upstreams(_Model):
    """Default provider bases for models without a model_list entry."""

    openai: str = "https://api.openai.com"
    anthropic: str = "https://api.anthropic.com"


class LocalMemoryConfig(_Model):
    path: str | None = None
    recency_half_life_days: float = Field(30.0, gt=0)


class SupermemoryConfig(_Model):
    api_key: str | None = "os.environ/SUPERMEMORY_API_KEY"
    base_url: str = "https://api.supermemory.ai"


QueryStrategy = Literal["last_user", "first_user", "all_user", "last_n"]
InjectionStrategy = Literal["system", "user_prefix", "user_suffix"]


class MemoryConfig(_Model):
    backend: Literal["local", "supermemory", "none"] = "local"
    query_strategy: QueryStrategy = "last_user"
    n: int = Field(3, ge=1)
    injection_strategy: InjectionStrategy | None = None
    top_k: int = Field(5, ge=0, le=100)
    max_chars: int = Field(2000, ge=0)
    recall_timeout_ms: int = Field(300, ge=1)
    store: bool = True
    local: LocalMemoryConfig = Field(default_factory=LocalMemoryConfig)
    supermemory: SupermemoryConfig = Field(default_factory=SupermemoryConfig)


class MemoryOverride(_Model):
    """Per-project memory settings; unset fields inherit the global ones."""

    backend: Literal["local", "supermemory", "none"] | None = None
    query_strategy: QueryStrategy | None = None
    n: int | None = Field(None, ge=1)
    injection_strategy: InjectionStrategy | None = None
    top_k: int | None = Field(None, ge=0, le=100)
    max_chars: int | None = Field(None, ge=0)
    recall_timeout_ms: int | None = Field(None, ge=1)
    store: bool | None = None


class HeaderPattern(_Model):
    header: str
    pattern: str
    user_id: str

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
    header_patterns: list[HeaderPattern] = Field(default_factory=list)
    default_user_id: str = "default"


class Budget(_Model):
    daily_usd: float | None = Field(None, ge=0)
    monthly_usd: float | None = Field(None, ge=0)


class ProjectPolicy(_Model):
    allowed_models: list[str] | None = None
    memory: MemoryOverride = Field(default_factory=MemoryOverride)


class Pricing(_Model):
    input_cost_per_token: float = Field(0.0, ge=0)
    output_cost_per_token: float = Field(0.0, ge=0)
    cache_read_input_token_cost: float | None = Field(None, ge=0)
    cache_creation_input_token_cost: float | None = Field(None, ge=0)


class ListenerConfig(_Model):
    port_range_start: int = Field(8765, ge=1024, le=65535)
    port_range_end: int = Field(8964, ge=1024, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> ListenerConfig:
        if self.port_range_end < self.port_range_start:
            raise ValueError("port_range_end must not be below port_range_start")
        return self


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Model):
    server: ServerConfig = Field(default_factory=ServerConfig)
    model_list: list[ModelEntry] = Field(default_factory=list)
    upstreams: Upstreams = Field(default_factory=Upstreams)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    user_id_mappings: UserIdMappings = Field(default_factory=UserIdMappings)
    database_url: str | None = None
    redis_url: str | None = None
    budgets: dict[str, Budget] = Field(default_factory=dict)
    projects: dict[str, ProjectPolicy] = Field(default_factory=dict)
    pricing: dict[str, Pricing] = Field(default_factory=dict)
    listeners: ListenerConfig = Field(default_factory=ListenerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    gateway_url: str | None = None

    source: str | None = Field(None, exclude=True)

    def memory_for(self, project: str | None) -> MemoryConfig:
        """The memory settings in force for a project (global ones with its overrides)."""
        policy = self.projects.get(project) if project else None
        if policy is None:
            return self.memory
        overrides = policy.memory.model_dump(exclude_none=True, exclude_unset=True)
        overrides = {k: v for k, v in overrides.items() if k in MemoryOverride.model_fields}
        return self.memory.model_copy(update=overrides) if overrides else self.memory


def resolve_secret(value: str | None) -> str | None:
    """Resolve a LiteLLM-style `os.environ/NAME` reference; other values pass unchanged."""
    if value and value.startswith(ENV_PREFIX):
        return os.environ.get(value[len(ENV_PREFIX) :]) or None
    return value


def env_references(raw: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (key path, NAME) whose value is an `os.environ/NAME` reference."""
    found: list[tuple[str, str]] = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            found += env_references(v, f"{path}.{k}" if path else str(k))
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            found += env_references(v, f"{path}[{i}]")
    elif isinstance(raw, str) and raw.startswith(ENV_PREFIX):
        found.append((path, raw[len(ENV_PREFIX) :]))
    return found


def unknown_keys(model: BaseModel, path: str = "") -> list[str]:
    """Keys present in the file that no setting reads (litellm_params may carry any)."""
    found: list[str] = []
    if not isinstance(model, LiteLLMParams):
        for key in model.model_extra or {}:
            found.append(f"{path}.{key}" if path else key)
    for name in type(model).model_fields:
        value = getattr(model, name)
        sub = f"{path}.{name}" if path else name
        children: list[tuple[str, Any]] = []
        if isinstance(value, BaseModel):
            children = [(sub, value)]
        elif isinstance(value, list):
            children = [(f"{sub}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            children = [(f"{sub}.{k}", v) for k, v in value.items()]
        for child_path, child in children:
            if isinstance(child, BaseModel):
                found += unknown_keys(child, child_path)
    return found


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """--config, then MEMPROXY_CONFIG, then the default location if it exists."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("MEMPROXY_CONFIG")
    if env:
        return Path(env).expanduser()
    default = get_paths().default_config
    return default if default.exists() else None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate; with no file anywhere, the embedded defaults."""
    path = config_path(explicit)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: invalid YAML: {problem}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}:1: the config must be a mapping of keys, not {type(raw).__name__}"
        )
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, node, source)) from None
    config.source = source
    return config


def _explain(exc: ValidationError, node: yaml.Node | None, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        line = _line_of(node, loc)
        where = f":{line}" if line else ""
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}{where}: {key or '(top level)'}: {msg}")
    return "\n".join(lines)


def _line_of(node: yaml.Node | None, loc: list[int | str]) -> int | None:
    """1-based line of the deepest node of `loc` present in the YAML tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key_node = next((k for k, v in node.value if k.value == part), None)
            if match is None:
                return line
            line = (key_node or match).start_mark.line + 1
            node = match
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
