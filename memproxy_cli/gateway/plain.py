"""Requests that name no model (OpenAI's stored responses: retrieve, delete, input items).

They go to the default upstream of the family's wire with the caller's credentials (the same
key rules as passthrough), method, path and query string as sent, through the one relay, and
leave a row like every other request. No recall, no memory, no tokens: a stored response's
tokens were counted when it was made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from memproxy_cli.api.family import ApiFamily
from memproxy_cli.api.tally import Tally
from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway import proxy
from memproxy_cli.gateway.dispatch import upstream_call
from memproxy_cli.gateway.exchange import Exchange, traceparent_for
from memproxy_cli.gateway.relay import relay
from memproxy_cli.gateway.resources import upstream_deps
from memproxy_cli.gateway.state import GatewayState
from memproxy_cli.gateway.validate import read_body
from memproxy_cli.upstream import passthrough


def handler_for(family: ApiFamily) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route handler for `family`'s model-less endpoints (Endpoint action `relay`)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await proxy.handle(request, family, serve=_serve)

    return handle


async def _serve(ex: Exchange, state: GatewayState) -> web.StreamResponse:
    request = ex.request
    ex.raw = await read_body(request, state.config.server.max_body_bytes)
    ex.stream = request.query.get("stream") == "true"
    ex.row.stream = ex.stream
    proxy.identify(ex, state)
    ex.traceparent, ex.row.trace_id = traceparent_for(request.headers.get("traceparent"))
    ex.response_headers["x-memproxy-overhead-ms"] = f"{ex.overhead_ms():.2f}"
    if state.config.gateway_url:
        response = await proxy.serve_edge(ex, state, state.config.gateway_url)
    else:
        response = await _relay_to_default(ex, state)
    ex.tally = Tally()
    return response


async def _relay_to_default(ex: Exchange, state: GatewayState) -> web.StreamResponse:
    family = ex.family
    route = state.router.default_route(family.wire)
    if route is None:
        raise GatewayError(
            404, f"no default upstream serves {ex.request.path[:200]}", "no_default_upstream"
        )
    ex.route = route
    ex.row.provider = route.provider
    call = upstream_call(ex, route)
    call.upstream_path = ex.request.path.removeprefix("/v1")
    ex.timeline.upstream_start = ex.elapsed_s()
    answer = await passthrough.forward(call, upstream_deps(ex.request.app))
    ex.timeline.upstream_answer = ex.elapsed_s()
    return await relay(ex, answer, state.config.server)
