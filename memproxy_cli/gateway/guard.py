"""The checks in front of every route: credential header bytes, Host and Origin checks, gateway
credentials, JSON bodies.

`guarded(handler)` wraps each route's handler at registration rather than being an aiohttp
middleware: with no middleware at all aiohttp calls the handler directly, without the
middleware chain and its own current-app wrapper (two coroutines and a partial per request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from memproxy_cli.api.registry import family_for_path
from memproxy_cli.config import LOOPBACK_HOSTS
from memproxy_cli.gateway.credential_headers import invalid_credential_header
from memproxy_cli.gateway.errors import error_response
from memproxy_cli.gateway.local_access import (
    content_type_refusal,
    cross_site_refusal,
    matching_headers,
    presented_credentials,
    without_headers,
)
from memproxy_cli.gateway.state import STATE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_PATHS = frozenset({"/health"})


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def web_page_refusal(request: web.Request) -> tuple[str, str | None] | None:
    """Why a request to a loopback listener looks sent by a web page (message, code), or None.

    DNS rebinding: a page must not reach a loopback port under a foreign name; and a page may
    send simple requests to loopback ports, but it is no tool of the user's."""
    host = _host_name(request.host or "")
    if host not in LOOPBACK_HOSTS:
        return f"Host {host!r} is not allowed", None
    refusal = cross_site_refusal(request.headers)
    if refusal is not None:
        return refusal, "cross_site_request"
    return None


def guarded(handler: Handler) -> Handler:
    """`handler` behind the guard: a refusal is answered before the handler sees the request."""

    async def checked(request: web.Request) -> web.StreamResponse:
        refused, request = check(request)
        if refused is not None:
            return refused
        return await handler(request)

    checked.__name__ = checked.__qualname__ = f"guarded({getattr(handler, '__name__', '?')})"
    return checked


def check(request: web.Request) -> tuple[web.Response | None, web.Request]:
    """(the refusal, or None; the request the handler gets: without the gateway credential)."""
    headers = request.headers
    bad = invalid_credential_header(headers)
    if bad is not None:
        message = f"the {bad} header must be printable ASCII"
        return _refuse(request, 400, message, "invalid_credential_header"), request
    state = request.app[STATE]
    server = state.config.server
    loopback = server.host in LOOPBACK_HOSTS
    if loopback:
        refused = web_page_refusal(request)
        if refused is not None:
            return _refuse(request, 403, *refused), request
    token = state.local_token if loopback else None  # off loopback only the master key counts
    # An unresolved master key (`os.environ/NAME` with NAME unset) still requires a credential.
    if (server.master_key or token) and request.path not in _OPEN_PATHS:
        accepted = (server.master_key_value, token)
        matched = matching_headers(presented_credentials(headers), accepted)
        if not matched:
            return _refuse(request, 401, _missing_credential(server.master_key, loopback)), request
        request = without_headers(request, matched)
    refusal = content_type_refusal(request.method, request.headers.get("content-type"))
    if refusal is not None:
        return _refuse(request, 415, refusal, "unsupported_media_type"), request
    return None, request


def _refuse(
    request: web.Request, status: int, message: str, code: str | None = None
) -> web.Response:
    """The refusal in the error shape of the API family the path belongs to."""
    return error_response(family_for_path(request.path), status, message, code)


def _missing_credential(master_key: str | None, loopback: bool) -> str:
    if master_key and not loopback:
        return "missing or wrong gateway key (server.master_key)"
    if master_key:
        return "missing or wrong gateway key (server.master_key or the local token)"
    return (
        "missing or wrong local token (server.local_token): send it as the API key or in "
        "x-memproxy-token; `memproxy attach` prints it, `memproxy run` passes it on"
    )
