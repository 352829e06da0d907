"""The passthrough transport: a request to an upstream that speaks its API, sent as it came."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict

from memproxy_cli.errors import GatewayError
from memproxy_cli.upstream import cloudflare
from memproxy_cli.upstream.bounds import read_body
from memproxy_cli.upstream.cloudflare import Verdict, parse_retry_after
from memproxy_cli.upstream.headers import (
    edge_headers,
    relay_headers,
    scrub_off_loop,
    upstream_headers,
    upstream_key,
)
from memproxy_cli.upstream.sessions import origin_of
from memproxy_cli.upstream.transport import UpstreamCall, UpstreamDeps, UpstreamResponse


async def forward_edge(
    call: UpstreamCall, deps: UpstreamDeps, caller: tuple[str | None, str], gateway_url: str
) -> UpstreamResponse:
    """Edge mode: hand the request, unchanged, to the shared team gateway with who is calling
    (`caller` is the project and the user id)."""
    url = gateway_url.rstrip("/") + call.path_qs
    headers = edge_headers(call.incoming, caller[0], caller[1], call.traceparent)
    origin = origin_of(url)
    if not deps.limiter.try_acquire(origin):
        raise GatewayError(503, f"too many requests in flight to {origin}", "upstream_busy")
    try:
        resp = await _send(call, deps, url, headers)
        if resp.status == 200 and resp.content_type == "text/event-stream":
            return _streamed(resp)
        return await _whole(call, deps, url, resp, ())
    finally:
        deps.limiter.release(origin)


async def forward(call: UpstreamCall, deps: UpstreamDeps) -> UpstreamResponse:
    """Relay to an upstream that speaks the client's API: the body and headers as sent."""
    route = call.route
    path = call.upstream_path or call.family.upstream_path(route.upstream_model, call.stream)
    url = route.endpoint_url(path)
    query = call.family.upstream_query(call.query)
    if query:
        url += "?" + query
    origin = origin_of(url)
    if not deps.limiter.try_acquire(origin):
        raise GatewayError(
            503,
            f"too many requests in flight to {origin} (cap {deps.limiter.cap}); retry shortly",
            "upstream_busy",
            headers={"Retry-After": "1"},
        )
    try:
        key = upstream_key(route, call.incoming, bool(deps.config.server.master_key), call.query)
        headers = upstream_headers(route, call.incoming, key, call.traceparent)
        resp = await _send(call, deps, url, headers)
        secrets = (key, route.api_key)
        if call.stream and resp.status == 200 and resp.content_type == "text/event-stream":
            deps.sessions.record(url, resp.status, resp.headers, Verdict.OK)
            return _streamed(resp)
        return await _whole(call, deps, url, resp, secrets)
    finally:
        deps.limiter.release(origin)


_CLOUDFLARE_REFUSALS = frozenset(
    {Verdict.CHALLENGE, Verdict.BLOCKED, Verdict.CF_1015, Verdict.CF_1200}
)


async def _send(
    call: UpstreamCall, deps: UpstreamDeps, url: str, headers: CIMultiDict[str]
) -> aiohttp.ClientResponse:
    """One request; a failure is a GatewayError (the routing layer decides whether to retry)."""
    server = deps.config.server
    session = deps.sessions.session_for(url)
    timeout = _timeout(
        None if call.stream else server.request_timeout_s,
        server.connect_timeout_s,
        server.stream_idle_timeout_s,
    )
    started = time.perf_counter()
    try:
        return await session.request(
            call.method, url, data=call.payload or None, headers=headers, timeout=timeout
        )
    except aiohttp.ClientConnectorError as exc:
        raise GatewayError(
            502,
            f"cannot reach upstream {origin_of(url)}: {_reason(exc)}",
            "upstream_unreachable",
        ) from None
    except TimeoutError:
        raise GatewayError(
            504,
            f"upstream {origin_of(url)} timed out",
            "upstream_timeout",
            row_status="upstream_timeout",
        ) from None
    except aiohttp.ClientError as exc:
        raise GatewayError(
            502, f"upstream {origin_of(url)} failed: {_reason(exc)}", "upstream_error"
        ) from None
    finally:
        call.timing.upstream_s += time.perf_counter() - started


@functools.lru_cache(maxsize=16)
def _timeout(total: float | None, connect: float, read: float) -> aiohttp.ClientTimeout:
    """One ClientTimeout per set of limits (it is immutable), not one built per call."""
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


async def _whole(
    call: UpstreamCall,
    deps: UpstreamDeps,
    url: str,
    resp: aiohttp.ClientResponse,
    secrets: tuple[str | None, ...],
) -> UpstreamResponse:
    sessions = deps.sessions
    started = time.perf_counter()
    try:
        async with resp:
            data = await read_body(resp, deps.config.server.max_upstream_body_bytes)
    except TimeoutError:
        raise GatewayError(
            504,
            "upstream timed out sending its response",
            "upstream_timeout",
            row_status="upstream_timeout",
        ) from None
    except aiohttp.ClientError as exc:
        raise GatewayError(502, f"upstream failed mid-response: {_reason(exc)}") from None
    finally:
        call.timing.upstream_s += time.perf_counter() - started
    verdict = cloudflare.classify(resp.status, resp.headers, data)
    sessions.record(url, resp.status, resp.headers, verdict.verdict)
    if verdict.verdict in _CLOUDFLARE_REFUSALS:
        retry = (
            {"Retry-After": str(math.ceil(verdict.retry_after_s))} if verdict.retry_after_s else {}
        )
        raise GatewayError(
            resp.status if resp.status >= 400 else 502,
            f"{origin_of(url)}: {verdict.message}",
            f"cloudflare_{verdict.verdict.value}",
            headers=retry,
        )
    headers = relay_headers(resp.headers)
    if 200 <= resp.status < 300:
        return UpstreamResponse(resp.status, headers, body=data)
    secrets = (*secrets, *sessions.cookie_values(url))
    return UpstreamResponse(
        resp.status,
        headers,
        body=await scrub_off_loop(data, secrets),
        error=f"upstream answered {resp.status}",
        retry_after_s=parse_retry_after(resp.headers.get("retry-after")),
        via_cloudflare=cloudflare.from_cloudflare(resp.headers),
    )


def _streamed(resp: aiohttp.ClientResponse) -> UpstreamResponse:
    headers = {**relay_headers(resp.headers), "Cache-Control": "no-cache"}
    return UpstreamResponse(200, headers, events=_chunks(resp), close=resp.close)


async def _chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives; failures become GatewayErrors."""
    try:
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                return
            yield chunk
    except TimeoutError:
        raise GatewayError(
            504, "upstream stream went idle", "upstream_timeout", row_status="upstream_timeout"
        ) from None
    except aiohttp.ClientPayloadError as exc:
        raise GatewayError(502, f"upstream stream broke: {_reason(exc)}") from None
