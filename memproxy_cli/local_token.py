"""The local token (`server.local_token`): a secret file only its owner can read.

Any local user can connect to a loopback port; only the user who runs memproxy can read this
file (0600 in the 0700 state dir), so a request that presents its contents comes from them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from memproxy_cli.paths import Paths

TOKEN_PREFIX = "mpt-"
TOKEN_HEADER = "x-memproxy-token"
_MIN_LENGTH = 32


def token_path(paths: Paths) -> Path:
    return paths.state_dir / "local-token"


def read_local_token(paths: Paths) -> str | None:
    """The token, or None when the daemon uses none (or the file is not a usable token)."""
    try:
        fd = os.open(token_path(paths), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8") as f:
        token = f.read(256).strip()
    return token if token.startswith(TOKEN_PREFIX) and len(token) >= _MIN_LENGTH else None


def ensure_local_token(paths: Paths) -> str:
    """The existing token (tools already configured keep working), or a new one."""
    existing = read_local_token(paths)
    if existing is not None:
        os.chmod(token_path(paths), 0o600)
        return existing
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = f"{os.fspath(token_path(paths))}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.replace(tmp, token_path(paths))
    return token


def remove_local_token(paths: Paths) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(token_path(paths))


def sync_local_token(enabled: bool, paths: Paths) -> str | None:
    """Make the file match the config: present with the token when on, absent when off."""
    if enabled:
        return ensure_local_token(paths)
    remove_local_token(paths)
    return None


def client_env(token: str, environ: dict[str, str]) -> dict[str, str]:
    """Variables that make tools present the token.

    Claude Code sends ANTHROPIC_CUSTOM_HEADERS on every request, so it keeps its own sign-in
    or key; OpenAI-compatible tools can send only their key, so OPENAI_API_KEY becomes the
    token (the daemon then uses the configured keys). MEMPROXY_TOKEN is for scripts.
    """
    header = f"{TOKEN_HEADER}: {token}"
    custom = [
        line
        for line in environ.get("ANTHROPIC_CUSTOM_HEADERS", "").splitlines()
        if line.strip() and not line.lower().startswith(TOKEN_HEADER + ":")
    ]
    return {
        "MEMPROXY_TOKEN": token,
        "ANTHROPIC_CUSTOM_HEADERS": "\n".join([*custom, header]),
        "OPENAI_API_KEY": token,
    }
