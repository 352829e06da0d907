"""HTTP routes: every API family's endpoints from the registry, plus /health and 404s."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from memproxy_cli import __version__
from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.family import ApiFamily, Endpoint
from memproxy_cli.api.registry import FAMILIES, family_for_path
from memproxy_cli.api.tally import estimate_tokens
from memproxy_cli.errors import GatewayError, RowStatus
from memproxy_cli.gateway import gemini_calls, model_list, observe, plain, proxy
from memproxy_cli.gateway.errors import error_response
from memproxy_cli.gateway.exchange import new_request_id, traceparent_for
from memproxy_cli.gateway.guard import guarded
from memproxy_cli.gateway.identity import resolve_identity
from memproxy_cli.gateway.resources import LITELLM, OBSERVER, RECORDER, SESSIONS
from memproxy_cli.gateway.state import STATE
from memproxy_cli.gateway.validate import check_request, parse_json, read_body
from memproxy_cli.observability.timeline import Timeline
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.upstream.headers import scrub_off_loop, upstream_headers, upstream_key
from memproxy_cli.upstream.routing import Route

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DOCS_HINT = "see docs/clients.md for the endpoints memproxy serves"


def _generate(family: ApiFamily) -> Handler:
    # A partial, not a closure: one coroutine less per request.
    return functools.partial(proxy.handle, family=family)


async def count_tokens(request: web.Request) -> web.Response:
    """Anthropic upstreams count exactly; other models get an estimate."""
    state = request.app[STATE]
    try:
        raw = await read_body(request, state.config.server.max_body_bytes)
        body = parse_json(raw)
        check_request(ANTHROPIC_MESSAGES, body)
        model = ANTHROPIC_MESSAGES.model_of(request.match_info, body)
        route = state.router.resolve(model, ANTHROPIC_MESSAGES.wire)
        if route is None:
            raise GatewayError(404, f"model {model!r} is not configured", "model_not_found")
        if route.kind == "passthrough":
            return await _count_upstream(request, route, body)
    except GatewayError as err:
        return error_response(ANTHROPIC_MESSAGES, err.status, err.message, err.code, err.headers)
    text = orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")]).decode()
    return web.json_response({"input_tokens": estimate_tokens(text)})


async def _count_upstream(request: web.Request, route: Route, body: dict[str, Any]) -> web.Response:
    state, sessions = request.app[STATE], request.app[SESSIONS]
    key = upstream_key(route, request.headers, bool(state.config.server.master_key))
    headers = upstream_headers(route, request.headers, key, traceparent_for(None)[0])
    url = route.endpoint_url("/messages/count_tokens")
    if request.query_string:
        url += "?" + request.query_string
    payload = orjson.dumps({**body, "model": route.upstream_model or body["model"]})
    timeout = aiohttp.ClientTimeout(total=state.config.server.connect_timeout_s * 6)
    try:
        async with sessions.session_for(url).post(
            url, data=payload, headers=headers, timeout=timeout
        ) as resp:
            secrets = (key, *sessions.cookie_values(url))
            data = await scrub_off_loop(await resp.read(), secrets)
            return web.Response(status=resp.status, body=data, content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return error_response(ANTHROPIC_MESSAGES, 502, f"upstream failed: {type(exc).__name__}")


async def health(request: web.Request) -> web.Response:
    state, litellm = request.app[STATE], request.app.get(LITELLM)
    body = {
        "status": "ok",
        "version": __version__,
        "uptime_s": round(time.time() - state.started_at, 3),
        "inflight": state.inflight,
        "litellm_ready": bool(litellm and litellm.ready),
    }
    return web.json_response(body, dumps=_dumps)


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


async def not_found(request: web.Request) -> web.Response:
    """A path no family serves: an error in the shape of the API the path belongs to, a
    request id, and a row, so `memproxy logs` shows what a tool tried to call."""
    state = request.app[STATE]
    family = family_for_path(request.path)
    row = RequestRow(
        request_id=new_request_id(),
        started_at=time.time(),
        endpoint=request.path[:200],
        status=RowStatus.NOT_FOUND,
        http_status=404,
    )
    try:
        identity = resolve_identity(request.headers, _listener_project(request), state.mappings)
        row.project, row.user_id, row.client = identity.project, identity.user_id, identity.client
    except GatewayError:
        pass
    message = f"memproxy does not serve {request.method} {request.path[:200]} ({DOCS_HINT})"
    row.error = message
    row.ended_at = time.time()
    recorder, observer = request.app.get(RECORDER), request.app.get(OBSERVER)
    if recorder is not None:
        recorder.submit(row)
    if observer is not None:
        observer.finished(row, Timeline())
    headers = {"x-memproxy-request-id": row.request_id}
    return error_response(family, 404, message, "not_found", headers)


def _listener_project(request: web.Request) -> str | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return request.app[STATE].port_projects.get(int(sockname[1]))
    return None


def _add(app: web.Application, family: ApiFamily, endpoint: Endpoint) -> None:
    handlers: dict[str, Handler] = {
        "generate": _generate(family),
        "relay": plain.handler_for(family),
        "count_tokens": count_tokens,
        "gemini_count_tokens": gemini_calls.count_tokens,
        "gemini_models": gemini_calls.models,
        "gemini_model": gemini_calls.model,
    }
    app.router.add_route(endpoint.method, endpoint.path, guarded(handlers[endpoint.action]))


def add_routes(app: web.Application) -> None:
    """Every route's handler is `guarded`: the app runs no middleware (see gateway/guard.py)."""
    for family in FAMILIES:
        for endpoint in family.endpoints:
            _add(app, family, endpoint)
    for prefix in ("/v1", ""):
        app.router.add_get(prefix + "/models", guarded(model_list.models))
        app.router.add_get(prefix + "/models/{model:.+}", guarded(model_list.model))
    app.router.add_get("/health", guarded(health))
    app.router.add_get("/metrics", guarded(observe.metrics))
    app.router.add_route("*", "/{tail:.*}", guarded(not_found))
