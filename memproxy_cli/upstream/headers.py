"""Which headers cross the gateway, in each direction, and whose credentials go upstream."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qsl

from multidict import CIMultiDict, CIMultiDictProxy

from memproxy_cli.upstream.routing import Route

# Request headers a client may send on to the provider.
_FORWARD = (
    "content-type",
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
    "tracestate",
)
# Response headers relayed back to the client (by name or prefix).
_RELAY = (
    "content-type",
    "retry-after",
    "request-id",
    "x-request-id",
    "openai-processing-ms",
    "x-memproxy-memories",  # from a shared gateway in edge mode
    "x-memproxy-memory-error",
)
_RELAY_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-", "openai-")

_ENV_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}


def caller_key(headers: Mapping[str, str], query: str = "") -> str | None:
    """The credential the caller sent (x-api-key, a bearer token, Gemini's x-goog-api-key or
    its `?key=` query parameter)."""
    key = headers.get("x-api-key") or headers.get("x-goog-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    if "key=" in query:
        return next((v for k, v in parse_qsl(query) if k == "key" and v), None)
    return None


def upstream_key(
    route: Route, incoming: Mapping[str, str], master_key_set: bool, query: str = ""
) -> str | None:
    """Config key first; else the caller's own (unless it is the master key); else the env."""
    if route.api_key:
        return route.api_key
    if not master_key_set:
        key = caller_key(incoming, query)
        if key:
            return key
    env = _ENV_KEYS.get(route.provider)
    return os.environ.get(env) if env else None


def upstream_headers(
    route: Route, incoming: CIMultiDictProxy[str], key: str | None, traceparent: str
) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name in _FORWARD:
        for value in incoming.getall(name, ()):
            out.add(name, value)
    out.setdefault("content-type", "application/json")
    out["traceparent"] = traceparent
    if key:
        if route.provider == "anthropic":
            bearer = incoming.get("authorization", "")
            # Claude Code signed in with an account sends an OAuth bearer token, not an API key.
            if (
                not route.api_key
                and bearer[:7].lower() == "bearer "
                and "x-api-key" not in incoming
            ):
                out["authorization"] = bearer
            else:
                out["x-api-key"] = key
            out.setdefault("anthropic-version", "2023-06-01")
        elif route.provider == "gemini":
            out["x-goog-api-key"] = key
        else:
            out["authorization"] = f"Bearer {key}"
    return out


def edge_headers(
    incoming: CIMultiDictProxy[str], project: str | None, user_id: str, traceparent: str
) -> CIMultiDict[str]:
    """Headers toward a shared team gateway: the caller's own, plus who is calling."""
    out: CIMultiDict[str] = CIMultiDict()
    for name in (*_FORWARD, "authorization", "x-api-key", "x-goog-api-key", "x-pycharm-instance"):
        for value in incoming.getall(name, ()):
            out.add(name, value)
    out.setdefault("content-type", "application/json")
    out["traceparent"] = traceparent
    if project:
        out["x-memproxy-project"] = project
    out["x-memory-user-id"] = user_id
    return out


def relay_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in upstream.items():
        lower = name.lower()
        if lower in _RELAY or lower.startswith(_RELAY_PREFIXES):
            out[name] = value
    return out


def scrub(data: bytes, secrets: tuple[str | None, ...]) -> bytes:
    """Remove credentials an upstream may echo back in an error body."""
    from memproxy_cli.memory.redact import redact

    for secret in secrets:
        if secret and len(secret) >= 8:
            data = data.replace(secret.encode(), b"[REDACTED]")
    text = data.decode("utf-8", "replace")
    cleaned = redact(text)
    return data if cleaned == text else cleaned.encode()
