"""Where the config file is, and a fast look at one raw value (no validation, no pydantic).

Everyday commands that need a single setting (`logs` and `spend` need `database_url`) read it
here and stay fast; everything that acts on the config validates it with `config.load_config`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from memproxy_cli.paths import get_paths

ENV_PREFIX = "os.environ/"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """--config, then MEMPROXY_CONFIG, then the default location if it exists."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("MEMPROXY_CONFIG")
    if env:
        return Path(env).expanduser()
    default = get_paths().default_config
    return default if default.exists() else None


def resolve_secret(value: str | None) -> str | None:
    """Resolve a LiteLLM-style `os.environ/NAME` reference; other values pass unchanged."""
    if value and value.startswith(ENV_PREFIX):
        return os.environ.get(value[len(ENV_PREFIX) :]) or None
    return value


def misplaced_configs(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """Config files where people put them but memproxy does not look (when none is in use)."""
    if config_path(explicit) is not None:
        return []
    paths = get_paths()
    candidates = [paths.config_dir / "config.yml", paths.config_dir / "memproxy.yaml"]
    if paths.home is not None:
        candidates += [paths.home / "config.yaml", paths.home / "config.yml"]
    candidates += [Path.home() / ".memproxy" / "config.yaml", Path.home() / ".memproxy.yaml"]
    return [p for p in candidates if p.is_file()]


class PeekError(Exception):
    """The file cannot be read as YAML; validate it with `load_config` for the full story."""


def peek(key: str, explicit: str | os.PathLike[str] | None = None) -> Any:
    """The raw value of a top-level key of the config file (None when unset or no file)."""
    path = config_path(explicit)
    if path is None:
        return None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise PeekError(str(exc)) from None
    return raw.get(key) if isinstance(raw, dict) else None
