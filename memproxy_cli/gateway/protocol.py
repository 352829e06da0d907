"""HTTP/1 connection handling aiohttp lacks: a header-read timeout (408) and 431 for big headers.

aiohttp has no limit on how long a client may take to send its request headers, so one
slowloris client per connection slot could hold the gateway open forever; and it answers 400
in plain text for an over-long header line or too many headers. `GatewayAppRunner` serves the
app through `GatewayRequestHandler`, which fixes both for every listener on the runner.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from memproxy_cli.api.family import ApiFamily
from memproxy_cli.api.registry import family_for_path

log = logging.getLogger("memproxy.protocol")

_REQUEST_LINE = re.compile(rb"^[A-Z]+ +(/[^ ?\r\n]*)")
_HEAD_KEEP = 256  # bytes of a request's start kept to know which API it was meant for


def _family_of_head(head: bytes) -> ApiFamily:
    match = _REQUEST_LINE.match(head)
    path = match.group(1) if match else b""
    return family_for_path(path.decode("latin-1"))


def _json_bytes(family: ApiFamily, status: int, message: str) -> bytes:
    return orjson.dumps(family.error_body(status, message))


def _headers_too_big(exc: BaseException | None) -> bool:
    if isinstance(exc, LineTooLong):
        return True
    return isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc)


class GatewayRequestHandler(RequestHandler):
    """A RequestHandler with a header-read deadline and JSON errors for malformed requests."""

    def __init__(self, manager: web.Server, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._head = b""
        self._reading_head = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        starting = not self._request_in_progress and not self._messages
        if starting and not self._reading_head:
            self._head, self._reading_head = b"", True
        if self._reading_head and len(self._head) < _HEAD_KEEP:
            self._head += data[: _HEAD_KEEP - len(self._head)]  # never a copy of a whole body
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._cancel_header_timer()  # headers complete: the request is the handler's now
            self._reading_head = False
        elif starting and data and self._header_timer is None:
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._force_close or self._close:
            return
        self._header_timer = self._loop.call_later(self._header_timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is None or self._force_close:
            return
        if self._request_in_progress or self._messages:
            return
        if self._head:
            message = f"request headers not received within {self._header_timeout_s:g} s"
            body = _json_bytes(_family_of_head(self._head), 408, message)
            transport.write(
                b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
            )
            transport.write(body)
            log.warning("client too slow sending headers", extra={"peer": str(self.peername)})
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 400 or not isinstance(exc, BadHttpMessage):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started, cannot send the parse error")
        if _headers_too_big(exc):
            status, text = 431, "request header fields too large"
        else:
            text = f"malformed HTTP request: {exc.message}"
        log.warning("bad request from client", extra={"status": status, "reason": text})
        resp = web.Response(
            status=status,
            body=_json_bytes(_family_of_head(self._head), status, text),
            content_type="application/json",
        )
        resp.force_close()
        return resp


class _GatewayServer(web.Server):
    """Builds GatewayRequestHandler connections with the app's handler arguments."""

    def __init__(self, base: web.Server, header_timeout_s: float) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self._header_timeout_s = header_timeout_s

    def __call__(self) -> RequestHandler:
        return GatewayRequestHandler(
            self, loop=self._loop, header_timeout_s=self._header_timeout_s, **self._kwargs
        )


class GatewayAppRunner(web.AppRunner):
    """An AppRunner whose connections use GatewayRequestHandler."""

    def __init__(self, app: web.Application, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        return _GatewayServer(await super()._make_server(), self._header_timeout_s)
