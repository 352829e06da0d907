"""Middleware in front of every route: Host check, master key, request id on every answer."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from memproxy_cli.api.registry import family_for_path
from memproxy_cli.config import LOOPBACK_HOSTS
from memproxy_cli.gateway.errors import error_response
from memproxy_cli.gateway.state import STATE
from memproxy_cli.upstream.headers import caller_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_PATHS = frozenset({"/health"})


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    server = state.config.server
    if server.host in LOOPBACK_HOSTS:
        # DNS rebinding: a web page must not reach the loopback gateway under a foreign name.
        host = _host_name(request.host or "")
        if host not in LOOPBACK_HOSTS:
            return error_response(
                family_for_path(request.path), 403, f"Host {host!r} is not allowed"
            )
    if server.master_key and request.path not in _OPEN_PATHS:
        # An unresolved key (`os.environ/NAME` with NAME unset) lets nobody in.
        expected = server.master_key_value
        offered = caller_key(request.headers) or ""
        if not expected or not hmac.compare_digest(offered.encode(), expected.encode()):
            return error_response(
                family_for_path(request.path),
                401,
                "missing or wrong gateway key (server.master_key)",
            )
    return await handler(request)
