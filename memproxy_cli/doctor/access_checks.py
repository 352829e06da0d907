"""Who can call the listeners: other local users without a token, a weak or unresolved master key.

The master key is checked on the config file's raw value, so an `os.environ/NAME` whose variable
is unset is named as such; the key itself is never shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memproxy_cli.doctor.result import CheckResult, fail, ok, warn

if TYPE_CHECKING:
    from memproxy_cli.config import Config

MIN_KEY_LENGTH = 24
MIN_DISTINCT_CHARS = 10


def check_access(config: Config | None, config_file: str | None = None) -> list[CheckResult]:
    from memproxy_cli.config import config_path

    path = config_path(config_file)
    results = [local_users(config), default_policy(config)] if config is not None else []
    raw_key = _raw_master_key(path) if path is not None else None
    if raw_key is not None:
        results.append(master_key_strength(raw_key, path))
    return results


def local_users(config: Config) -> CheckResult:
    """Loopback TCP takes connections from every local user: only a secret tells them apart."""
    from memproxy_cli.config import LOOPBACK_HOSTS

    server = config.server
    if server.host not in LOOPBACK_HOSTS:
        return ok("local users", "off loopback every listener needs server.master_key")
    if server.local_token:
        return ok("local users", "loopback listeners need the local token (server.local_token)")
    if server.master_key:
        return ok("local users", "loopback listeners need server.master_key")
    return warn(
        "local users",
        f"the listeners on {server.host} take requests from any local user: another account on "
        "this machine can spend the configured keys and read every project's memories",
        "set server.local_token: true (memproxy run and attach hand the token to your tools)",
    )


def default_policy(config: Config) -> CheckResult:
    """Per-project limits bind only the requests that name the project; "*" binds the rest."""
    from memproxy_cli.config_model import DEFAULT_POLICY

    gaps = []
    restricted = [
        name
        for name, policy in config.projects.items()
        if name != DEFAULT_POLICY and policy.allowed_models is not None
    ]
    if restricted and DEFAULT_POLICY not in config.projects:
        gaps.append('projects has allowed_models but no "*" entry')
    if config.budgets and DEFAULT_POLICY not in config.budgets:
        gaps.append('budgets has no "*" entry')
    if not gaps:
        return ok("default policy", "requests without a project have no limits to step around")
    return warn(
        "default policy",
        f"{' and '.join(gaps)}: a request that names no project (or an unlisted one) escapes them",
        'add "*" under projects and budgets: the policy and budget for every other request',
    )


def master_key_strength(raw: str, path: Path | None = None) -> CheckResult:
    """Set, resolvable and hard to guess: long and varied (never shown)."""
    from memproxy_cli.config import ENV_PREFIX, resolve_secret

    where = f" in {path}" if path else ""
    if raw.startswith(ENV_PREFIX):
        name = raw[len(ENV_PREFIX) :]
        if not os.environ.get(name):
            return fail(
                "master key",
                f"server.master_key reads os.environ/{name}, which is not set: there is no key",
                f"export {name}=... in the daemon's environment (a long random value)",
            )
    key = resolve_secret(raw) or ""
    problems = []
    if len(key) < MIN_KEY_LENGTH:
        problems.append(f"shorter than {MIN_KEY_LENGTH} characters")
    if len(set(key)) < MIN_DISTINCT_CHARS:
        problems.append(f"fewer than {MIN_DISTINCT_CHARS} different characters")
    if problems:
        return warn(
            "master key",
            f"server.master_key{where} is weak: {' and '.join(problems)}",
            'use a random key, e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"',
        )
    return ok("master key", "server.master_key is long and varied")


def _raw_master_key(path: Path) -> str | None:
    import yaml

    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    server = raw.get("server") if isinstance(raw, dict) else None
    value = server.get("master_key") if isinstance(server, dict) else None
    return value if isinstance(value, str) and value else None
