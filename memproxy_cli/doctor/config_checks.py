"""Config: found, parses, validates, every `os.environ/NAME` reference set, no unknown keys."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memproxy_cli.doctor.result import CheckResult, fail, ok, warn

if TYPE_CHECKING:
    from memproxy_cli.config import Config


@dataclass(frozen=True)
class ConfigOutcome:
    """The results, and the config the other checks use (None when it is unusable)."""

    results: list[CheckResult]
    config: Config | None


def check_config(explicit: str | None = None) -> ConfigOutcome:
    from memproxy_cli.config import Config, ConfigError, config_path, load_config
    from memproxy_cli.config_file import misplaced_configs
    from memproxy_cli.paths import get_paths

    path = config_path(explicit)
    if path is None:
        default = get_paths().default_config
        misplaced = misplaced_configs(explicit)
        if misplaced:
            names = ", ".join(str(p) for p in misplaced)
            return ConfigOutcome(
                [
                    warn(
                        "config",
                        f"no config file at {default}, but found {names}, which memproxy "
                        "does not read; running on the built-in defaults",
                        f"move it to {default}, or pass --config / set MEMPROXY_CONFIG",
                    )
                ],
                Config(),
            )
        message = f"no config file at {default}; using the built-in defaults"
        return ConfigOutcome([ok("config", message)], Config())
    try:
        config = load_config(path)
    except ConfigError as exc:
        fix = f"correct the key named above in {path} (see config.example.yaml)"
        return ConfigOutcome([fail("config", str(exc), fix)], None)
    results = [ok("config", f"{path} parses and validates")]
    results.append(env_references_set(path))
    results.append(no_unknown_keys(config, path))
    return ConfigOutcome(results, config)


def env_references_set(path: Path) -> CheckResult:
    """Each `os.environ/NAME` in the file names a variable that is set (values never shown)."""
    from memproxy_cli.config import env_references

    missing = [(key, name) for key, name in env_references(_raw(path)) if not os.environ.get(name)]
    if not missing:
        return ok("config env references", "every os.environ/NAME reference is set")
    found = "; ".join(f"{key} reads os.environ/{name}, which is not set" for key, name in missing)
    names = " ".join(sorted({f"{name}=..." for _, name in missing}))
    return fail(
        "config env references",
        found,
        f"export {names} in the daemon's environment, or change the key in {path}",
    )


def no_unknown_keys(config: Config, path: Path) -> CheckResult:
    from memproxy_cli.config import unknown_keys

    unknown = unknown_keys(config)
    if not unknown:
        return ok("config keys", "no unknown keys")
    return warn(
        "config keys",
        f"keys no setting reads: {', '.join(unknown)}",
        f"check the spelling in {path} against config.example.yaml, or remove them",
    )


def _raw(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
