"""Hostile upstreams: huge bodies, gzip bombs, endless streams and unterminated SSE events are cut
at their configured limit, answered with a 502 in the API's shape, and the upstream hung up on."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestServer

from tests.fixtures.gateway import config_for, running_gateway
from tests.fixtures.reliability import rows_when

KIB = 1024
MIB = 1024 * KIB
LIMIT = 1 * MIB
# Whatever the client's read buffer and one socket read may add to the bytes handed over at once.
SLACK = 1 * MIB
# What a fake sends at most before it stops (without ending the response): far past every limit.
CAP = 64 * MIB

MESSAGES: Any = [{"role": "user", "content": "hi"}]
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}
MESSAGE: dict[str, Any] = {"model": "claude-test-1", "max_tokens": 16, "messages": MESSAGES}

Pieces = Callable[[], Iterator[bytes]]


class Hostile:
    """One upstream on loopback that sends `pieces` and then neither ends nor closes."""

    def __init__(self) -> None:
        self.pieces: Pieces = lambda: iter(())
        self.headers: dict[str, str] = {}
        self.content_type = "application/json"
        self.sent = 0  # body bytes handed to the transport
        self.finished = False  # every piece was written
        self.disconnected = asyncio.Event()  # the gateway hung up on us
        self.server: TestServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def start(self) -> Hostile:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/messages", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0, handler_cancellation=True)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=200, headers=self.headers)
        resp.content_type = self.content_type
        try:
            await resp.prepare(request)
            for piece in self.pieces():
                await resp.write(piece)
                self.sent += len(piece)
            self.finished = True
            await asyncio.Event().wait()  # hold the response open: only a hang-up ends it
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return resp


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    upstream = await Hostile().start()
    yield upstream
    await upstream.close()


@pytest.fixture
def upstream_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of every read the gateway made from an upstream response body."""
    sizes: list[int] = []
    original = StreamReader.readany

    async def counting(self: StreamReader) -> bytes:
        data = await original(self)
        if isinstance(self._protocol, ResponseHandler):  # client side: gateway -> upstream
            sizes.append(len(data))
        return data

    monkeypatch.setattr(StreamReader, "readany", counting)
    return sizes


def repeat(piece: bytes, total: int = CAP) -> Pieces:
    def pieces() -> Iterator[bytes]:
        for _ in range(total // len(piece)):
            yield piece

    return pieces


def gzip_zeros(inflated: int) -> Pieces:
    """A gzip member of `inflated` zero bytes, compressed as it is sent (about 1000:1)."""

    def pieces() -> Iterator[bytes]:
        gz = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = bytes(MIB)
        for _ in range(inflated // MIB):
            out = gz.compress(block)
            if out:
                yield out
        yield gz.flush(zlib.Z_SYNC_FLUSH)

    return pieces


def limits(**server: Any) -> dict[str, Any]:
    # A generous idle timeout, only so that a gateway that reads without bound still ends.
    return {"stream_idle_timeout_s": 10, "max_retries": 0, **server}


async def hung_up(upstream: Hostile) -> None:
    await asyncio.wait_for(upstream.disconnected.wait(), 30)


async def _one_row() -> dict[str, Any]:
    [row] = await rows_when(1)
    return row


def _sse_events(text: str) -> list[str]:
    return [e for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]


async def _stream(
    url: str, body: dict[str, Any], check: Callable[[httpx.Response], Awaitable[None]]
) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", url, json=body) as resp:
            await check(resp)


# Whole bodies -------------------------------------------------------------------------------


async def test_huge_body_is_cut_at_the_limit(hostile: Hostile, upstream_reads: list[int]) -> None:
    hostile.pieces = repeat(b"x" * (64 * KIB))
    config = config_for(hostile.base, server=limits(max_upstream_body_bytes=LIMIT))
    async with running_gateway(config, litellm=False) as gw:
        async with openai.AsyncOpenAI(
            base_url=gw.url + "/v1", api_key="sk-caller-0001", max_retries=0
        ) as oai:
            with pytest.raises(openai.APIStatusError) as raised:
                await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        await hung_up(hostile)
        row = await _one_row()
    err = raised.value
    assert err.status_code == 502
    body = err.response.json()
    assert set(body) == {"error"} and body["error"]["type"] == "api_error"
    assert body["error"]["code"] == "upstream_response_too_large"
    assert "server.max_upstream_body_bytes" in body["error"]["message"]
    assert row["status"] == "error" and row["http_status"] == 502
    assert "max_upstream_body_bytes" in row["error"]
    assert sum(upstream_reads) <= LIMIT + SLACK
    assert not hostile.finished  # hung up on, not drained


async def test_declared_length_over_the_limit_is_refused_unread(
    hostile: Hostile, upstream_reads: list[int]
) -> None:
    hostile.headers = {"Content-Length": str(1024 * MIB)}
    hostile.pieces = repeat(b"x" * (64 * KIB))
    config = config_for(hostile.base, server=limits(max_upstream_body_bytes=LIMIT))
    async with running_gateway(config, litellm=False) as gw:
        async with httpx.AsyncClient(timeout=60) as http:
            resp = await http.post(gw.url + "/v1/chat/completions", json=CHAT)
        await hung_up(hostile)
        row = await _one_row()
    assert resp.status_code == 502
    assert "server.max_upstream_body_bytes" in resp.json()["error"]["message"]
    assert "max_upstream_body_bytes" in row["error"]
    assert sum(upstream_reads) == 0


async def test_gzip_bomb_is_cut_at_the_inflated_limit(
    hostile: Hostile, upstream_reads: list[int]
) -> None:
    hostile.headers = {"Content-Encoding": "gzip"}
    hostile.pieces = gzip_zeros(256 * MIB)
    config = config_for(hostile.base, server=limits(max_upstream_body_bytes=LIMIT))
    async with running_gateway(config, litellm=False) as gw:
        async with anthropic.AsyncAnthropic(
            base_url=gw.url, api_key="sk-ant-caller-0001", max_retries=0
        ) as ant:
            with pytest.raises(anthropic.APIStatusError) as raised:
                await ant.messages.create(**MESSAGE)
        await hung_up(hostile)
        row = await _one_row()
    err = raised.value
    assert err.status_code == 502
    body = err.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "server.max_upstream_body_bytes" in body["error"]["message"]
    assert row["status"] == "error" and "max_upstream_body_bytes" in row["error"]
    assert hostile.sent < LIMIT  # the compressed body was small: the inflated size tripped it
    assert sum(upstream_reads) <= LIMIT + SLACK


async def test_gateway_serves_normally_after_a_cut(hostile: Hostile) -> None:
    hostile.pieces = repeat(b"x" * (64 * KIB))
    config = config_for(hostile.base, server=limits(max_upstream_body_bytes=LIMIT))
    async with running_gateway(config, litellm=False) as gw:
        async with httpx.AsyncClient(timeout=60) as http:
            first = await http.post(gw.url + "/v1/chat/completions", json=CHAT)
            await hung_up(hostile)
            answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
            hostile.pieces = lambda: iter([orjson.dumps(answer)])
            hostile.headers = {"Content-Length": str(len(orjson.dumps(answer)))}
            second = await http.post(gw.url + "/v1/chat/completions", json=CHAT)
    assert first.status_code == 502
    assert second.status_code == 200 and second.json() == answer


# Streams ------------------------------------------------------------------------------------


def _openai_delta(text: str) -> bytes:
    choice = {"index": 0, "delta": {"content": text}}
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def test_endless_stream_ends_at_max_stream_bytes(
    hostile: Hostile, upstream_reads: list[int]
) -> None:
    hostile.content_type = "text/event-stream"
    hostile.pieces = repeat(_openai_delta("y" * 1000) * 16)
    config = config_for(hostile.base, server=limits(max_stream_bytes=LIMIT))
    seen: list[str] = []

    async def check(resp: httpx.Response) -> None:
        assert resp.status_code == 200
        seen.append((await resp.aread()).decode())

    async with running_gateway(config, litellm=False) as gw:
        await _stream(gw.url + "/v1/chat/completions", {**CHAT, "stream": True}, check)
        await hung_up(hostile)
        row = await _one_row()
    last = _sse_events(seen[0])[-1]
    assert last.startswith("data: ")
    error = orjson.loads(last[len("data: ") :])["error"]
    assert error["type"] == "api_error" and "server.max_stream_bytes" in error["message"]
    assert row["status"] == "error" and "max_stream_bytes" in row["error"]
    assert sum(upstream_reads) <= LIMIT + SLACK
    assert not hostile.finished


async def test_unterminated_event_ends_at_max_upstream_event_bytes(
    hostile: Hostile, upstream_reads: list[int]
) -> None:
    hostile.content_type = "text/event-stream"
    start = b"event: content_block_delta\ndata: "

    def pieces() -> Iterator[bytes]:
        yield start
        yield from repeat(b"z" * (16 * KIB), 16 * MIB)()

    hostile.pieces = pieces
    config = config_for(
        hostile.base, server=limits(max_upstream_event_bytes=LIMIT, max_stream_bytes=CAP)
    )
    seen: list[str] = []

    async def check(resp: httpx.Response) -> None:
        assert resp.status_code == 200
        seen.append((await resp.aread()).decode())

    async with running_gateway(config, litellm=False) as gw:
        await _stream(gw.url + "/v1/messages", {**MESSAGE, "stream": True}, check)
        await hung_up(hostile)
        row = await _one_row()
    [event] = _sse_events(seen[0])  # the unterminated event itself never reached the client
    name, data = event.split("\n", 1)
    assert name == "event: error"
    body = orjson.loads(data[len("data: ") :])
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "server.max_upstream_event_bytes" in body["error"]["message"]
    assert row["status"] == "error" and "max_upstream_event_bytes" in row["error"]
    assert sum(upstream_reads) <= LIMIT + SLACK


# Units --------------------------------------------------------------------------------------


def _looked_at(found: int, length: int, sub: bytes, start: int | None) -> int:
    """Bytes a search from `start` looked at: up to the end of its match, or to the end."""
    return (found + len(sub) if found >= 0 else length) - (start or 0)


class CountingBuffer(bytearray):
    """A pending buffer that counts the bytes its separator searches look at."""

    scanned = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        found = super().find(sub, start, end)
        CountingBuffer.scanned += _looked_at(found, len(self), sub, start)
        return found


class CountingBytes(bytes):
    """A chunk that counts the bytes its separator searches look at."""

    scanned = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        found = super().find(sub, start, end)
        CountingBytes.scanned += _looked_at(found, len(self), sub, start)
        return found


def test_unterminated_event_is_scanned_about_once_per_byte() -> None:
    from memproxy_cli.gateway.sse import SSEBuffer

    buffer = SSEBuffer()
    CountingBuffer.scanned = 0
    buffer._buf = CountingBuffer()
    chunks, size = 2000, 256
    buffer.feed(b"data: ")
    for _ in range(chunks):
        assert buffer.feed(b"q" * size) == []
    assert 0 < CountingBuffer.scanned <= 2 * chunks * (size + 4)
    payload = b"q" * (chunks * size)
    assert buffer.feed(b"\n\n") == [(b"data: " + payload + b"\n\n", payload)]


def test_many_events_in_one_chunk_are_scanned_linearly() -> None:
    from memproxy_cli.gateway.sse import SSEBuffer

    chunk = CountingBytes(b"data: {}\n\n" * 5000)
    CountingBytes.scanned = 0
    events = SSEBuffer().feed(chunk)
    assert len(events) == 5000 and events[0] == (b"data: {}\n\n", b"{}")
    assert CountingBytes.scanned <= 3 * len(chunk)


def test_pending_event_over_the_cap_raises() -> None:
    from memproxy_cli.gateway.sse import SSEBuffer

    buffer = SSEBuffer(max_event_bytes=1000)
    from memproxy_cli.upstream.bounds import UpstreamTooLarge

    assert buffer.feed(b"data: " + b"a" * 900 + b"\n\n" + b"data: b") != []
    with pytest.raises(UpstreamTooLarge) as raised:
        for _ in range(20):
            buffer.feed(b"b" * 100)
    assert raised.value.status == 502
    assert "server.max_upstream_event_bytes" in raised.value.message


STREAM = (
    b"event: a\ndata: 1\n\n"
    b"data: 2\r\n\r\n"
    b": comment\n\n"
    b"data: x\ndata: y\r\n\r\n"
    b"data: \xe2\x9c\x93\n\n"
    b"data: tail"
)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 11, len(STREAM)])
def test_separators_split_across_chunks(size: int) -> None:
    from memproxy_cli.gateway.sse import SSEBuffer

    buffer = SSEBuffer()
    events = []
    for i in range(0, len(STREAM), size):
        events += buffer.feed(STREAM[i : i + size])
    assert [raw for raw, _ in events] == [
        b"event: a\ndata: 1\n\n",
        b"data: 2\r\n\r\n",
        b": comment\n\n",
        b"data: x\ndata: y\r\n\r\n",
        b"data: \xe2\x9c\x93\n\n",
    ]
    assert [data for _, data in events] == [b"1", b"2", None, b"x\ny", b"\xe2\x9c\x93"]
    assert buffer.rest() == b"data: tail" and buffer.rest() == b""


def test_tally_keeps_at_most_the_capped_text() -> None:
    from memproxy_cli.api.tally import Tally

    kept = 256 * KIB  # far above what memory stores of a turn, far below an endless stream
    tally = Tally()
    for _ in range(4 * kept // 1000):
        tally.add_text("w" * 1000)
    assert tally.text == "w" * kept


async def test_translated_stream_ends_at_max_stream_bytes(hostile: Hostile) -> None:
    hostile.content_type = "text/event-stream"

    def pieces() -> Iterator[bytes]:  # distinct deltas: LiteLLM refuses a repeating one
        for i in range(16 * 1024):
            yield _openai_delta(f"{i:06d} " + "v" * 993)

    hostile.pieces = pieces
    entry = {
        "model_name": "gpt-via-anthropic",
        "litellm_params": {
            "model": "openai/gpt-test",
            "api_base": hostile.base + "/v1",
            "api_key": "sk-openai-configured-0001",
            "timeout": 20,  # only so that a gateway that relays without bound still ends
        },
    }
    config = config_for(
        "http://127.0.0.1:9", model_list=[entry], server=limits(max_stream_bytes=LIMIT)
    )
    seen: list[str] = []

    async def check(resp: httpx.Response) -> None:
        assert resp.status_code == 200
        seen.append((await resp.aread()).decode())

    body = {**MESSAGE, "model": "gpt-via-anthropic", "stream": True}
    async with running_gateway(config) as gw:
        await _stream(gw.url + "/v1/messages", body, check)
        await hung_up(hostile)
        row = await _one_row()
    name, data = _sse_events(seen[0])[-1].split("\n", 1)
    assert name == "event: error"
    error = orjson.loads(data[len("data: ") :])["error"]
    assert "server.max_stream_bytes" in error["message"]
    assert row["status"] == "error" and "max_stream_bytes" in row["error"]
    assert not hostile.finished
