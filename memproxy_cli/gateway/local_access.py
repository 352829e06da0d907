"""Who may use a loopback listener: not a browser page, and, with a local token, only its owner.

Every check is an allowlist: a loopback `Origin` or none, a `Sec-Fetch-Site` a browser sends only
for same-site requests, a body declared as JSON, a credential equal to one the gateway holds.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from memproxy_cli.config import LOOPBACK_HOSTS
from memproxy_cli.local_token import TOKEN_HEADER

# A browser page on another site sends `cross-site`; a typed URL or bookmark sends `none`.
_SAME_SITE_FETCHES = frozenset({"same-origin", "same-site", "none"})
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})
_WEB_SCHEMES = frozenset({"http", "https"})


def cross_site_refusal(headers: Mapping[str, str]) -> str | None:
    """Why a request looks sent by a web page of another site, or None when it does not."""
    origin = headers.get("origin")
    if origin is not None and not is_loopback_origin(origin):
        return f"cross-origin requests are refused (Origin {origin[:100]!r} is not loopback)"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in _SAME_SITE_FETCHES:
        return "cross-site requests are refused (Sec-Fetch-Site: " + fetch_site[:40] + ")"
    return None


def is_loopback_origin(origin: str) -> bool:
    try:
        url = URL(origin.strip())
    except ValueError:
        return False
    host = (url.host or "").lower().strip("[]")
    return url.scheme in _WEB_SCHEMES and host in LOOPBACK_HOSTS and url.path in ("", "/")


def content_type_refusal(method: str, content_type: str | None) -> str | None:
    """Why a request body is refused: the APIs speak JSON, and a page can send other types."""
    if method.upper() in _BODYLESS_METHODS:
        return None
    if declares_json(content_type):
        return None
    declared = (content_type or "none")[:100]
    return f"request bodies must be JSON (Content-Type: application/json), not {declared!r}"


def declares_json(content_type: str | None) -> bool:
    """application/json or any application/*+json type, parameters such as charset allowed."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def presented_credentials(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """(header, value) of every credential the caller sent: its token, API key or bearer
    (Gemini clients send theirs in x-goog-api-key)."""
    found = []
    for name in (TOKEN_HEADER, "x-api-key", "x-goog-api-key"):
        value = headers.get(name)
        if value:
            found.append((name, value.strip()))
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        found.append(("authorization", auth[7:].strip()))
    return found


def matching_headers(presented: list[tuple[str, str]], accepted: Iterable[str | None]) -> set[str]:
    """The headers whose value equals a credential the gateway accepts (constant time)."""
    keys = [k.encode() for k in accepted if k]
    matched = set()
    for name, value in presented:
        offered = value.encode("utf-8", "replace")
        # Compare with every key, always, so timing says nothing about which one matched.
        hits = [hmac.compare_digest(offered, key) for key in keys]
        if any(hits):
            matched.add(name)
    return matched


def without_headers(request: web.Request, names: set[str]) -> web.Request:
    """The request minus the gateway's own credentials, so no later stage can forward them."""
    names = names | {TOKEN_HEADER}
    if not any(name in request.headers for name in names):
        return request
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        if name.lower() not in names:
            headers.add(name, value)
    return request.clone(headers=headers)
