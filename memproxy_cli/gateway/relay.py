"""The one relay: writes every transport's answer to the client, whatever its API family.

Whole answers are read for usage and text and sent as they are. Streams are relayed event by
event as they arrive, byte for byte, while the family reads each event (usage, text, the
terminal event) and may drop one it added itself; an upstream failure after the first byte
becomes the family's SSE error event; a client hang-up ends the stream quietly.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from memproxy_cli.config_model import ServerConfig
from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.sse import SSEBuffer
from memproxy_cli.upstream.bounds import close_stream, stream_too_large
from memproxy_cli.upstream.transport import UpstreamResponse


async def relay(ex: Exchange, up: UpstreamResponse, server: ServerConfig) -> web.StreamResponse:
    try:
        if up.events is None:
            return _whole(ex, up)
        return await _stream(ex, up, server)
    finally:
        if up.close is not None:
            up.close()


def _whole(ex: Exchange, up: UpstreamResponse) -> web.Response:
    row = ex.row
    row.http_status = up.status
    headers = {**up.headers, **ex.response_headers}
    if up.body is None:
        body = orjson.dumps(up.document)
        document = up.document
    else:
        body, document = up.body, None
    if 200 <= up.status < 300:
        if document is None:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                document = None
        ex.family.tally_response(ex.tally, document)
    else:
        row.status, row.error = "error", up.error or f"upstream answered {up.status}"
    if up.body is None:
        return web.Response(
            status=up.status, body=body, content_type="application/json", headers=headers
        )
    return web.Response(status=up.status, body=body, headers=headers)


async def _stream(ex: Exchange, up: UpstreamResponse, server: ServerConfig) -> web.StreamResponse:
    assert up.events is not None
    out = web.StreamResponse(status=up.status, headers={**up.headers, **ex.response_headers})
    out.content_type = "text/event-stream"
    ex.row.http_status = up.status
    buffer = SSEBuffer(server.max_upstream_event_bytes)
    # Without memory, whole runs of events that hold nothing that counts go on as they came.
    runs = ex.recall is None
    received, max_stream = 0, server.max_stream_bytes
    events = aiter(up.events)
    try:
        await out.prepare(ex.request)
        while True:
            started = time.perf_counter()
            try:
                chunk = await anext(events)
            except StopAsyncIteration:
                break
            finally:
                ex.timing.upstream_s += time.perf_counter() - started
            received += len(chunk)
            if received > max_stream:
                raise stream_too_large(max_stream)
            payload = _run(ex, buffer, chunk) if runs else _observe(ex, buffer.feed(chunk))
            if payload:
                if ex.ttft_s is None:
                    ex.ttft_s = ex.elapsed_s()
                await out.write(payload)
        rest = buffer.rest()
        if rest:
            await out.write(rest)
        await out.write_eof()
    except GatewayError as err:
        ex.row.status, ex.row.error = err.row_status, err.message
        await _try_write(out, ex.family.sse_error_event(err.status, err.message))
    except ConnectionResetError:
        if not ex.stream_complete:
            ex.row.status, ex.row.error = "client_disconnect", "client went away mid-stream"
    finally:
        await close_stream(events)
    return out


def _run(ex: Exchange, buffer: SSEBuffer, chunk: bytes) -> bytes:
    """What `_observe(ex, buffer.feed(chunk))` sends, reading events only from the first that
    may count (memory off: `ApiFamily.first_count`); those before it go on as they came."""
    run = buffer.feed_run(chunk)
    first = ex.family.first_count(run)
    if first >= len(run):
        return run
    cut = 0
    if first > 0 and b"\r" not in run and b"\n\n\n" not in run:
        # Only "\n\n" separators, none overlapping: the last one before `first` ends the
        # last event that does not count.
        end = run.rfind(b"\n\n", 0, first)
        cut = end + 2 if end >= 0 else 0
    if cut == 0:
        return _observe(ex, SSEBuffer().feed(run))
    return run[:cut] + _observe(ex, SSEBuffer().feed(run[cut:]))


def _observe(ex: Exchange, events: list[tuple[bytes, bytes | None]]) -> bytes:
    """Let the family read each event; keep what it keeps, note the terminal one."""
    family, tally, wants_usage = ex.family, ex.tally, ex.client_wants_usage
    is_done, tally_event, loads = family.is_done_marker, family.tally_event, orjson.loads
    # Without memory the answer's text and tool calls go unused: read only events that count.
    counts = family.event_counts if ex.recall is None else None
    kept = []
    for raw, data in events:
        if data is None:
            kept.append(raw)
            continue
        if is_done(data):
            ex.stream_complete = True
            kept.append(raw)
            continue
        if counts is not None and not counts(data):
            kept.append(raw)
            continue
        try:
            event = loads(data)
        except orjson.JSONDecodeError:
            kept.append(raw)
            continue
        verdict = tally_event(tally, event, wants_usage)
        if verdict.terminal:
            ex.stream_complete = True
        if verdict.keep:
            kept.append(raw)
    return b"".join(kept)


async def _try_write(out: web.StreamResponse, data: bytes) -> None:
    try:
        await out.write(data)
        await out.write_eof()
    except ConnectionResetError:
        pass
