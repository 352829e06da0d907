"""Which headers cross the gateway, in each direction, and whose credentials go upstream."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from multidict import CIMultiDict, CIMultiDictProxy

from memproxy_cli.upstream.routing import Route

# Request headers that never cross the gateway: hop-by-hop (RFC 9110 7.6.1) and framing,
# credentials the gateway manages (keys, cookies: each upstream session has its own jar),
# and memproxy's own and identity headers. Every other header reaches the upstream as sent,
# User-Agent and client session headers (X-Claude-Code-Session-Id, x-stainless-*) included.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",  # the upstream session negotiates its own compression
        "expect",
    }
)
_CREDENTIALS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "x-memproxy-token",
    }
)
_IDENTITY = frozenset(
    {"x-memory-user-id", "x-memproxy-project", "x-pycharm-instance", "traceparent"}
)
_OWN_PREFIX = "x-memproxy-"
VIA = "1.1 memproxy"
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
NO_KEY = "memproxy-no-key-configured"  # what LiteLLM gets where no key may be sent


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
    """The key sent upstream, or None for none at all.

    A model_list api_key is the only candidate for its entry: when its os.environ/NAME is unset,
    nothing is sent (no other key may go to that entry's server). Otherwise the caller's own
    credential, unless the caller's credential is the gateway's (master key). Last, the daemon's
    OPENAI_API_KEY / ANTHROPIC_API_KEY, only toward the provider's default base (`upstreams`),
    never to an api_base the config did not pair with that key.
    """
    if route.key_configured:
        return route.api_key
    if not master_key_set:
        key = caller_key(incoming, query)
        if key:
            return key
    if not env_key_allowed(route):
        return None
    env = _ENV_KEYS.get(route.provider)
    return os.environ.get(env) if env else None


def env_key_allowed(route: Route) -> bool:
    """Whether a key from the daemon's environment may go to this route's upstream."""
    return not route.key_configured and not route.custom_base


def litellm_key(
    route: Route, incoming: Mapping[str, str], master_key_set: bool, query: str = ""
) -> str | None:
    """`upstream_key` for LiteLLM, which reads provider variables itself when given no key:
    where no environment key may go, a placeholder that is no secret stands in for "none"."""
    key = upstream_key(route, incoming, master_key_set, query)
    if key:
        return key
    return None if env_key_allowed(route) else NO_KEY


def upstream_headers(
    route: Route, incoming: CIMultiDictProxy[str], key: str | None, traceparent: str
) -> CIMultiDict[str]:
    out = end_to_end(incoming)
    out.setdefault("content-type", "application/json")
    out["traceparent"] = traceparent
    if key:
        if route.provider == "anthropic":
            bearer = incoming.get("authorization", "")
            # Claude Code signed in with an account sends an OAuth bearer token, not an API key:
            # relay it as a bearer only when it is the key chosen (the caller's own).
            if (
                not route.key_configured
                and bearer[:7].lower() == "bearer "
                and bearer[7:].strip() == key
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


def end_to_end(incoming: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The client's headers that go on to the upstream, with memproxy added to `Via`."""
    listed = (
        {t.strip().lower() for v in incoming.getall("connection", ()) for t in v.split(",")}
        if "connection" in incoming
        else None
    )
    out: CIMultiDict[str] = CIMultiDict()
    forwards = _forwards
    for name, value in incoming.items():
        sent = forwards.get(name)
        if sent is None:
            sent = _remember(forwards, name, _forwarded(name.lower()))
        if sent and (listed is None or name.lower() not in listed):
            out.add(name, value)
    via = incoming.getall("via", ())
    out["Via"] = ", ".join([*via, VIA])
    return out


def _forwarded(lower: str) -> bool:
    """Whether a request header of this (lower-case) name may reach the upstream."""
    return not (
        lower in _HOP_BY_HOP
        or lower in _CREDENTIALS
        or lower in _IDENTITY
        or lower.startswith(_OWN_PREFIX)
        or lower == "via"
    )


# Each header name's verdict, by its spelling as sent: clients send the same few dozen names
# on every request, so the lower-casing and the set tests run once per name, not per request.
_NAMES_KEPT = 512
_forwards: dict[str, bool] = {}
_relays: dict[str, bool] = {}


def _remember(cache: dict[str, bool], name: str, verdict: bool) -> bool:
    if len(cache) >= _NAMES_KEPT:  # a client inventing names cannot grow it without bound
        cache.clear()
    cache[name] = verdict
    return verdict


def edge_headers(
    incoming: CIMultiDictProxy[str], project: str | None, user_id: str, traceparent: str
) -> CIMultiDict[str]:
    """Headers toward a shared team gateway: the caller's own, plus who is calling."""
    out = end_to_end(incoming)
    for name in ("authorization", "x-api-key", "x-goog-api-key", "x-pycharm-instance"):
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
    relays = _relays
    for name, value in upstream.items():
        keep = relays.get(name)
        if keep is None:
            lower = name.lower()
            keep = _remember(relays, name, lower in _RELAY or lower.startswith(_RELAY_PREFIXES))
        if keep:
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


async def scrub_off_loop(data: bytes, secrets: Iterable[str | None]) -> bytes:
    """`scrub` in a worker thread: an upstream error body may be megabytes."""
    return await asyncio.to_thread(scrub, data, tuple(secrets))
