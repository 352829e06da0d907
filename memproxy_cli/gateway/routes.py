"""HTTP routes of both API families, plus /health."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from memproxy_cli import __version__
from memproxy_cli.gateway import proxy
from memproxy_cli.gateway.errors import GatewayError, error_response
from memproxy_cli.gateway.exchange import traceparent_for
from memproxy_cli.gateway.state import STATE
from memproxy_cli.gateway.synth import estimate_tokens
from memproxy_cli.gateway.validate import check_request, parse_json, read_body
from memproxy_cli.upstream.headers import scrub_off_loop, upstream_headers, upstream_key
from memproxy_cli.upstream.routing import Route


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await proxy.handle(request, "openai")


async def messages(request: web.Request) -> web.StreamResponse:
    return await proxy.handle(request, "anthropic")


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    created = int(state.started_at)
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "memproxy"}
        for name in state.router.model_names()
    ]
    if request.headers.get("anthropic-version") or "x-api-key" in request.headers:
        anthropic = [
            {
                "type": "model",
                "id": m["id"],
                "display_name": m["id"],
                "created_at": "1970-01-01T00:00:00Z",
            }
            for m in data
        ]
        body = {"data": anthropic, "has_more": False, "first_id": None, "last_id": None}
        return web.json_response(body, dumps=_dumps)
    return web.json_response({"object": "list", "data": data}, dumps=_dumps)


async def count_tokens(request: web.Request) -> web.Response:
    """Anthropic upstreams count exactly; other models get an estimate."""
    state = request.app[STATE]
    try:
        raw = await read_body(request, state.config.server.max_body_bytes)
        body = parse_json(raw)
        check_request("anthropic", body)
        route = state.router.resolve(body["model"], "anthropic")
        if route is None:
            raise GatewayError(404, f"model {body['model']!r} is not configured", "model_not_found")
        if route.kind == "passthrough" and state.sessions is not None:
            return await _count_upstream(request, route, body)
    except GatewayError as err:
        return error_response("anthropic", err.status, err.message, err.code, err.headers)
    text = orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")]).decode()
    return web.json_response({"input_tokens": estimate_tokens(text)})


async def _count_upstream(request: web.Request, route: Route, body: dict[str, Any]) -> web.Response:
    state = request.app[STATE]
    assert state.sessions is not None
    key = upstream_key(route, request.headers, bool(state.config.server.master_key))
    headers = upstream_headers(route, request.headers, key, traceparent_for(None)[0])
    url = route.endpoint_url("/messages/count_tokens")
    payload = orjson.dumps({**body, "model": route.upstream_model or body["model"]})
    timeout = aiohttp.ClientTimeout(total=state.config.server.connect_timeout_s * 6)
    try:
        async with state.sessions.session_for(url).post(
            url, data=payload, headers=headers, timeout=timeout
        ) as resp:
            secrets = (key, *state.sessions.cookie_values(url))
            data = await scrub_off_loop(await resp.read(), secrets)
            return web.Response(status=resp.status, body=data, content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return error_response("anthropic", 502, f"upstream failed: {type(exc).__name__}")


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {
        "status": "ok",
        "version": __version__,
        "uptime_s": round(time.time() - state.started_at, 3),
        "inflight": state.inflight,
        "litellm_ready": bool(state.litellm and state.litellm.ready),
    }
    return web.json_response(body, dumps=_dumps)


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/models", models)
    app.router.add_get("/health", health)
