"""Name the calling client (claude-cli, openai-python, ...) from its User-Agent."""

from __future__ import annotations

import re
from functools import lru_cache

_VERSION = r"(?:[/ ]v?(\d[\w.+-]*))?"

# Order matters: tools first (they may embed an SDK's token), then SDKs, then HTTP libraries.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), name)
    for pattern, name in (
        (r"\bclaude-cli" + _VERSION, "claude-cli"),
        (r"(?i)\bcursor" + _VERSION, "cursor"),
        (r"(?i)\bcontinue(?:\.dev)?" + _VERSION, "continue"),
        (r"(?i)\baider" + _VERSION, "aider"),
        (r"\bGeminiCLI(?:-\w+)?" + _VERSION, "gemini-cli"),
        (r"\bPyCharm" + _VERSION, "pycharm"),
        (r"\bIntelliJ(?:[ -]?IDEA)?" + _VERSION, "intellij"),
        (r"\bJetBrains(?:[ -]AI[ -]Assistant)?" + _VERSION, "jetbrains"),
        (r"(?i)\blitellm" + _VERSION, "litellm"),
        (r"\b(?:Async)?OpenAI/Python" + _VERSION, "openai-python"),
        (r"\b(?:Async)?Anthropic/Python" + _VERSION, "anthropic-python"),
        (r"\b(?:Async)?OpenAI/JS" + _VERSION, "openai-node"),
        (r"\b(?:Async)?Anthropic/JS" + _VERSION, "anthropic-node"),
        (r"\bgoogle-genai-sdk" + _VERSION, "google-genai"),
        (r"\bcurl" + _VERSION, "curl"),
        (r"\bpython-requests" + _VERSION, "python-requests"),
        (r"\bpython-httpx" + _VERSION, "httpx"),
        (r"\baiohttp" + _VERSION, "aiohttp"),
    )
)
_FIRST_TOKEN = re.compile(r"([^\s/;()]+)(?:/([^\s;()]+))?")
_MAX_LEN = 64


@lru_cache(maxsize=1024)
def parse_client(user_agent: str | None) -> tuple[str | None, str | None]:
    """(name, version) of the client; a known name when recognised, else the first product token."""
    if not user_agent or not user_agent.strip():
        return None, None
    for pattern, name in _RULES:
        match = pattern.search(user_agent)
        if match:
            return name, _clip(match.group(1))
    first = _FIRST_TOKEN.search(user_agent)
    if first is None:
        return None, None
    return _clip(first.group(1)), _clip(first.group(2))


def _clip(value: str | None) -> str | None:
    return value[:_MAX_LEN] if value else None
