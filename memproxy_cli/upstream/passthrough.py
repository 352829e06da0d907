"""Relay a request to a same-protocol upstream with aiohttp, streaming event by event."""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from memproxy_cli.gateway.errors import GatewayError, sse_error_event
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.sse import SSEBuffer
from memproxy_cli.gateway.state import GatewayState
from memproxy_cli.upstream import cloudflare
from memproxy_cli.upstream.cloudflare import Verdict, parse_retry_after
from memproxy_cli.upstream.headers import (
    edge_headers,
    relay_headers,
    scrub_off_loop,
    upstream_headers,
    upstream_key,
)
from memproxy_cli.upstream.limits import backoff_delay
from memproxy_cli.upstream.sessions import SessionManager, origin_of

_RETRY_STATUSES = frozenset({429, 503})
_MAX_RETRY_AFTER_S = 5.0


async def forward_edge(ex: Exchange, state: GatewayState, gateway_url: str) -> web.StreamResponse:
    """Edge mode: hand the request, unchanged, to the shared team gateway with our identity."""
    assert state.sessions is not None and ex.identity is not None
    url = gateway_url.rstrip("/") + ex.request.path_qs
    headers = edge_headers(ex.request.headers, ex.identity, ex.traceparent)
    origin = origin_of(url)
    if not state.limiter.try_acquire(origin):
        raise GatewayError(503, f"too many requests in flight to {origin}", "upstream_busy")
    try:
        resp = await _send(ex, state, url, headers, None)
        if resp.status == 200 and resp.content_type == "text/event-stream":
            return await _relay_stream(ex, state, resp)
        return await _relay_whole(ex, state.sessions, url, resp, None)
    finally:
        state.limiter.release(origin)


async def forward(ex: Exchange, state: GatewayState, path: str) -> web.StreamResponse:
    route = ex.route
    assert route is not None and state.sessions is not None
    url = route.endpoint_url(path)
    if ex.request.rel_url.raw_query_string:  # as sent: the decoded form may hold '#' or '&'
        url += "?" + ex.request.rel_url.raw_query_string
    origin = origin_of(url)
    _refuse_if_backed_off(state.sessions, url, origin)
    if not state.limiter.try_acquire(origin):
        raise GatewayError(
            503,
            f"too many requests in flight to {origin} (cap {state.limiter.cap}); retry shortly",
            "upstream_busy",
            headers={"Retry-After": "1"},
        )
    try:
        key = upstream_key(route, ex.request.headers, bool(state.config.server.master_key))
        headers = upstream_headers(route, ex.request.headers, key, ex.traceparent)
        resp = await _send(ex, state, url, headers, key)
        if ex.stream and resp.status == 200 and resp.content_type == "text/event-stream":
            state.sessions.record(url, resp.status, resp.headers, Verdict.OK)
            return await _relay_stream(ex, state, resp)
        return await _relay_whole(ex, state.sessions, url, resp, key)
    finally:
        state.limiter.release(origin)


_CLOUDFLARE_REFUSALS = frozenset(
    {Verdict.CHALLENGE, Verdict.BLOCKED, Verdict.CF_1015, Verdict.CF_1200}
)


def _refuse_if_backed_off(sessions: SessionManager, url: str, origin: str) -> None:
    until = sessions.backoff_until(url)
    wait = (until or 0.0) - time.time()
    if wait > 0:
        raise GatewayError(
            429,
            f"upstream {origin} asked us to back off; retry in {math.ceil(wait)} s",
            "upstream_rate_limited",
            headers={"Retry-After": str(math.ceil(wait))},
            row_status="rate_limited",
        )


async def _send(
    ex: Exchange, state: GatewayState, url: str, headers: CIMultiDict[str], key: str | None
) -> aiohttp.ClientResponse:
    """POST with retries: only before any byte reached the client, on connect errors or 429/503."""
    server = state.config.server
    session = state.sessions.session_for(url)  # type: ignore[union-attr]
    timeout = aiohttp.ClientTimeout(
        total=None if ex.stream else server.request_timeout_s,
        sock_connect=server.connect_timeout_s,
        sock_read=server.stream_idle_timeout_s,
    )
    payload = ex.body_bytes()
    state.retry_budget.on_request()
    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            resp = await session.post(url, data=payload, headers=headers, timeout=timeout)
        except aiohttp.ClientConnectorError as exc:
            ex.upstream_s += time.perf_counter() - started
            if attempt < server.max_retries and state.retry_budget.try_spend():
                await asyncio.sleep(backoff_delay(attempt, None))
                attempt += 1
                continue
            raise GatewayError(
                502,
                f"cannot reach upstream {origin_of(url)}: {_reason(exc)}",
                "upstream_unreachable",
            ) from None
        except TimeoutError:
            ex.upstream_s += time.perf_counter() - started
            raise GatewayError(
                504,
                f"upstream {origin_of(url)} timed out",
                "upstream_timeout",
                row_status="upstream_timeout",
            ) from None
        except aiohttp.ClientError as exc:
            ex.upstream_s += time.perf_counter() - started
            raise GatewayError(
                502, f"upstream {origin_of(url)} failed: {_reason(exc)}", "upstream_error"
            ) from None
        ex.upstream_s += time.perf_counter() - started
        if (
            resp.status in _RETRY_STATUSES
            and attempt < server.max_retries
            and not cloudflare.from_cloudflare(resp.headers)  # never retry into a challenge
        ):
            wait = parse_retry_after(resp.headers.get("retry-after"))
            if (wait is None or wait <= _MAX_RETRY_AFTER_S) and state.retry_budget.try_spend():
                resp.release()
                await asyncio.sleep(backoff_delay(attempt, wait))
                attempt += 1
                continue
        ex.row.extra["attempts"] = attempt + 1
        return resp


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


async def _relay_whole(
    ex: Exchange,
    sessions: SessionManager,
    url: str,
    resp: aiohttp.ClientResponse,
    key: str | None,
) -> web.Response:
    started = time.perf_counter()
    try:
        async with resp:
            data = await resp.read()
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
        ex.upstream_s += time.perf_counter() - started
    ex.row.http_status = resp.status
    verdict = cloudflare.classify(resp.status, resp.headers, data)
    sessions.record(url, resp.status, resp.headers, verdict.verdict)
    if verdict.verdict in (Verdict.RATE_LIMITED, Verdict.CF_1015) and verdict.retry_after_s:
        sessions.set_backoff(url, verdict.retry_after_s)
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
    headers = {**relay_headers(resp.headers), **ex.response_headers}
    if 200 <= resp.status < 300:
        _tally_whole(ex, data)
    else:
        ex.row.status = "error"
        ex.row.error = f"upstream answered {resp.status}"
        secrets = (key, ex.route.api_key if ex.route else None, *sessions.cookie_values(url))
        data = await scrub_off_loop(data, secrets)
    return web.Response(status=resp.status, body=data, headers=headers)


def _tally_whole(ex: Exchange, data: bytes) -> None:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if ex.api == "openai":
        ex.tally.openai_response(body)
    else:
        ex.tally.anthropic_response(body)


async def _relay_stream(
    ex: Exchange, state: GatewayState, resp: aiohttp.ClientResponse
) -> web.StreamResponse:
    out = web.StreamResponse(
        status=200, headers={**relay_headers(resp.headers), **ex.response_headers}
    )
    out.content_type = "text/event-stream"
    out.headers["Cache-Control"] = "no-cache"
    ex.row.http_status = 200
    buffer = SSEBuffer()
    try:
        await out.prepare(ex.request)
        while True:
            started = time.perf_counter()
            chunk = await resp.content.readany()
            ex.upstream_s += time.perf_counter() - started
            if not chunk:
                break
            payload = _observe(ex, buffer.feed(chunk))
            if payload:
                if ex.ttft_s is None:
                    ex.ttft_s = ex.elapsed_s()
                await out.write(payload)
        rest = buffer.rest()
        if rest:
            await out.write(rest)
        await out.write_eof()
    except TimeoutError:
        ex.row.status, ex.row.error = "upstream_timeout", "upstream stream went idle"
        await _try_write(out, sse_error_event(ex.api, 504, "upstream stream went idle"))
    except aiohttp.ClientPayloadError as exc:
        ex.row.status, ex.row.error = "error", f"upstream stream broke: {_reason(exc)}"
        await _try_write(out, sse_error_event(ex.api, 502, "upstream stream broke"))
    except ConnectionResetError:
        if not ex.stream_complete:
            ex.row.status, ex.row.error = "client_disconnect", "client went away mid-stream"
    finally:
        resp.close()
    return out


def _observe(ex: Exchange, events: list[tuple[bytes, bytes | None]]) -> bytes:
    """Account usage and text; drop the usage chunk the client did not ask for."""
    kept = []
    for raw, data in events:
        if data is None or data == b"[DONE]":
            ex.stream_complete = ex.stream_complete or data == b"[DONE]"
            kept.append(raw)
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            kept.append(raw)
            continue
        if ex.api == "openai":
            if ex.tally.openai_event(event) and not ex.client_wants_usage:
                continue
        else:
            ex.tally.anthropic_event(event)
            ex.stream_complete = ex.stream_complete or event.get("type") == "message_stop"
        kept.append(raw)
    return b"".join(kept)


async def _try_write(out: web.StreamResponse, data: bytes) -> None:
    try:
        await out.write(data)
        await out.write_eof()
    except ConnectionResetError:
        pass
