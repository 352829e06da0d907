"""Load, validate and explain the YAML config; errors name the key and the file line.

The schema itself lives in `config_model.py`; its names are re-exported here.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from memproxy_cli.config_file import ENV_PREFIX, config_path, resolve_secret
from memproxy_cli.config_memory import (
    InjectionStrategy,
    LocalMemoryConfig,
    MemoryConfig,
    MemoryOverride,
    QueryStrategy,
    SupermemoryConfig,
)
from memproxy_cli.config_model import (
    LOOPBACK_HOSTS,
    Budget,
    Config,
    HeaderPattern,
    ListenerConfig,
    LoggingConfig,
    Pricing,
    ProjectPolicy,
    ServerConfig,
    UserIdMappings,
)
from memproxy_cli.config_routing import LiteLLMParams, ModelEntry, RouterSettings, Upstreams

__all__ = [
    "ENV_PREFIX",
    "LOOPBACK_HOSTS",
    "Budget",
    "Config",
    "ConfigError",
    "HeaderPattern",
    "InjectionStrategy",
    "ListenerConfig",
    "LiteLLMParams",
    "LocalMemoryConfig",
    "LoggingConfig",
    "MemoryConfig",
    "MemoryOverride",
    "ModelEntry",
    "Pricing",
    "ProjectPolicy",
    "QueryStrategy",
    "RouterSettings",
    "ServerConfig",
    "SupermemoryConfig",
    "Upstreams",
    "UserIdMappings",
    "config_path",
    "env_references",
    "load_config",
    "parse_config",
    "resolve_secret",
    "unknown_keys",
]


class ConfigError(Exception):
    """A config that cannot be used; the message names the file, line and key."""


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
        # Point at where the broken construct starts (an unclosed bracket's line, not EOF).
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{context}: {problem}" if context else problem
        raise ConfigError(f"{source}{where}: invalid YAML: {detail}") from exc
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
