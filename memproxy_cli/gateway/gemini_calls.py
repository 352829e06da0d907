"""The Gemini API's side calls: `:countTokens` and the models list (generation goes through
the request path like every family's)."""

from __future__ import annotations

import aiohttp
import orjson
from aiohttp import web

from memproxy_cli.api.gemini import GEMINI, gemini_model
from memproxy_cli.api.tally import estimate_tokens
from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway.errors import error_response
from memproxy_cli.gateway.exchange import traceparent_for
from memproxy_cli.gateway.resources import SESSIONS
from memproxy_cli.gateway.state import STATE
from memproxy_cli.gateway.validate import FORBIDDEN_FIELDS, parse_json, read_body
from memproxy_cli.upstream.headers import scrub_off_loop, upstream_headers, upstream_key
from memproxy_cli.upstream.routing import Route, versioned_gemini_base


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


async def count_tokens(request: web.Request) -> web.Response:
    """Gemini upstreams count exactly; other models get an estimate."""
    state = request.app[STATE]
    try:
        body = parse_json(await read_body(request, state.config.server.max_body_bytes))
        bad = FORBIDDEN_FIELDS.intersection(body)
        if bad:
            raise GatewayError(400, f"field(s) {', '.join(sorted(bad))} may not be set")
        model = GEMINI.model_of(request.match_info, body)
        route = state.router.resolve(model, GEMINI.wire)
        if route is None:
            raise GatewayError(404, f"model {model!r} is not configured", "model_not_found")
        if route.kind == "passthrough":
            path = f"/models/{route.upstream_model or model}:countTokens"
            return await _gemini_upstream(request, route, path, orjson.dumps(body))
    except GatewayError as err:
        return error_response(GEMINI, err.status, err.message, err.code, err.headers)
    return web.json_response({"totalTokens": estimate_tokens(orjson.dumps(body).decode())})


async def models(request: web.Request) -> web.Response:
    """memproxy's own models, after Google's when the caller's key lists them."""
    state = request.app[STATE]
    ours = [gemini_model(name) for name in state.router.model_names()]
    base = versioned_gemini_base(state.config.upstreams.gemini)
    route = Route(kind="passthrough", model="", provider="gemini", base_url=base)
    if "pageToken" not in request.query:
        upstream = await _gemini_upstream(request, route, "/models", None)
        if upstream.status == 200 and isinstance(upstream.body, bytes):
            listed = orjson.loads(upstream.body)
            if isinstance(listed, dict) and isinstance(listed.get("models"), list):
                listed["models"] = [*listed["models"], *ours]
                return web.json_response(listed, dumps=_dumps)
    return web.json_response({"models": ours}, dumps=_dumps)


async def model(request: web.Request) -> web.Response:
    """One model: memproxy's own, or Google's for a gemini-* that passes through."""
    state = request.app[STATE]
    name = request.match_info["model"]
    if name in state.router.model_names():
        return web.json_response(gemini_model(name), dumps=_dumps)
    route = state.router.resolve(name, GEMINI.wire)
    if route is None or route.kind != "passthrough":
        message = f"models/{name} is not found; configure it in model_list"
        return error_response(GEMINI, 404, message, "model_not_found")
    return await _gemini_upstream(request, route, f"/models/{route.upstream_model or name}", None)


async def _gemini_upstream(
    request: web.Request, route: Route, path: str, payload: bytes | None
) -> web.Response:
    """One call to a Gemini upstream with the caller's (or the configured) key."""
    state, sessions = request.app[STATE], request.app[SESSIONS]
    query = request.query_string
    key = upstream_key(route, request.headers, bool(state.config.server.master_key), query)
    headers = upstream_headers(route, request.headers, key, traceparent_for(None)[0])
    url = route.endpoint_url(path)
    if GEMINI.upstream_query(query):
        url += "?" + GEMINI.upstream_query(query)
    timeout = aiohttp.ClientTimeout(total=state.config.server.connect_timeout_s * 6)
    method = "GET" if payload is None else "POST"
    try:
        async with sessions.session_for(url).request(
            method, url, data=payload, headers=headers, timeout=timeout
        ) as resp:
            secrets = (key, *sessions.cookie_values(url))
            data = await scrub_off_loop(await resp.read(), secrets)
            return web.Response(status=resp.status, body=data, content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return error_response(GEMINI, 502, f"upstream failed: {type(exc).__name__}")
