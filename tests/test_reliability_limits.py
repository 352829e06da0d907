"""Ingress limits on real sockets: slow headers get 408, big headers 431, big bodies 413."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.raw_http import read_reply, request_head, send_raw

ECHO = b'{"model": "memproxy/echo", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    config = config_for(
        "http://127.0.0.1:9", server={"header_timeout_s": 1, "max_body_bytes": 4096}
    )
    async with running_gateway(config, litellm=False, store=False) as gateway:
        yield gateway


async def _echo_ok(gw: RunningGateway) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            gw.url + "/v1/chat/completions", data=ECHO, headers={"Content-Type": "application/json"}
        ) as resp:
            await resp.read()
            return resp.status


async def test_slowloris_gets_408_and_others_are_served(gw: RunningGateway) -> None:
    port = gw.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head("/v1/messages", port))
    await writer.drain()

    async def trickle() -> None:
        for byte in b"X-Slow: " + b"a" * 200:  # 40 s worth: far past the 1 s deadline
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)

    trickler = asyncio.create_task(trickle())
    try:
        # Meanwhile other clients are served normally, on fresh connections.
        for _ in range(3):
            assert await _echo_ok(gw) == 200
        reply = await read_reply(reader, timeout=20)
        assert reply.status == 408
        assert reply.json()["error"]["type"] == "timeout_error"  # Anthropic shape for /v1/messages
        assert reply.json()["type"] == "error"
        assert await asyncio.wait_for(reader.read(), 10) == b""  # and the connection is closed
        assert not trickler.done()  # it was cut off mid-trickle, not after finishing
    finally:
        trickler.cancel()
        writer.close()
    assert await _echo_ok(gw) == 200


async def test_idle_keepalive_connection_is_not_a_slow_client(gw: RunningGateway) -> None:
    """The header deadline starts with a request's first byte, not while a connection idles."""
    port = gw.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = request_head("/v1/chat/completions", port, f"Content-Length: {len(ECHO)}\r\n\r\n")
        writer.write(head + ECHO)
        assert (await read_reply(reader)).status == 200
        await asyncio.sleep(1.5)  # idle longer than the header timeout, on purpose
        writer.write(head + ECHO)
        assert (await read_reply(reader)).status == 200
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("path", "shape"), [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")]
)
async def test_header_line_too_long_is_431_in_api_shape(
    gw: RunningGateway, path: str, shape: str
) -> None:
    port = gw.server.port
    assert port is not None
    big = "X-Big: " + "a" * 20_000 + "\r\n"
    reply = await send_raw(port, request_head(path, port, big + "Content-Length: 2\r\n\r\n{}"))
    assert reply.status == 431
    body = reply.json()
    if shape == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["type"] == "invalid_request_error"
        assert "header" in body["error"]["message"]
    assert reply.headers["content-type"].startswith("application/json")


async def test_too_many_headers_is_431(gw: RunningGateway) -> None:
    port = gw.server.port
    assert port is not None
    many = "".join(f"X-H{i}: v\r\n" for i in range(300))
    reply = await send_raw(
        port, request_head("/v1/chat/completions", port, many + "Content-Length: 2\r\n\r\n{}")
    )
    assert reply.status == 431
    assert reply.json()["error"]["message"] == "request header fields too large"


async def test_malformed_request_is_400_json(gw: RunningGateway) -> None:
    port = gw.server.port
    assert port is not None
    reply = await send_raw(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost x\r\n\r\n")
    assert reply.status == 400
    assert "malformed HTTP request" in reply.json()["error"]["message"]


async def test_declared_oversize_body_gets_413_before_it_is_sent(gw: RunningGateway) -> None:
    port = gw.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # Only the headers go out: the 413 must come without the gateway waiting for a byte
        # of the 1 GB it was promised.
        writer.write(request_head("/v1/messages", port, "Content-Length: 1000000000\r\n\r\n"))
        await writer.drain()
        reply = await read_reply(reader, timeout=20)
    finally:
        writer.close()
    assert reply.status == 413
    assert reply.json()["error"]["type"] == "request_too_large"


async def test_chunked_oversize_body_gets_413_while_still_sending(gw: RunningGateway) -> None:
    port = gw.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            request_head("/v1/chat/completions", port, "Transfer-Encoding: chunked\r\n\r\n")
        )
        chunk = b"a" * 1024
        for _ in range(6):  # 6 KiB against a 4 KiB limit; the final 0-chunk is never sent
            writer.write(b"400\r\n" + chunk + b"\r\n")
        await writer.drain()
        reply = await read_reply(reader, timeout=20)
    finally:
        writer.close()
    assert reply.status == 413
    assert "limit" in reply.json()["error"]["message"]
