"""Upstream failure handling against a real fake upstream: caps, timeouts, retries, disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from tests.fixtures.daemon import free_port
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import blackhole_port, rows_when, until

MESSAGES: Any = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    yield provider
    await provider.close()


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-caller-0001", max_retries=0)


async def _post(gw: RunningGateway, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.url + "/v1/chat/completions", json=body) as resp:
            return resp.status, dict(resp.headers), await resp.read()


async def test_per_origin_cap_refuses_excess_at_once(fake: FakeProvider) -> None:
    fake.behaviour.gate = asyncio.Event()
    config = config_for(fake.base, server={"max_concurrent_per_upstream": 2})
    async with running_gateway(config, litellm=False) as gw:
        held = [asyncio.create_task(_post(gw, CHAT)) for _ in range(2)]
        await until(lambda: len(fake.seen) == 2, what="two requests at the upstream")
        # The upstream is still gated: an answer now proves the third was not queued.
        status, headers, body = await asyncio.wait_for(_post(gw, CHAT), 10)
        assert status == 503 and headers["Retry-After"] == "1"
        assert b"upstream_busy" in body
        assert len(fake.seen) == 2
        fake.behaviour.gate.set()
        assert [s for s, _, _ in await asyncio.gather(*held)] == [200, 200]
        assert (await _post(gw, CHAT))[0] == 200  # slots were released


async def test_connect_timeout_to_a_blackholed_upstream() -> None:
    with blackhole_port() as port:
        config = config_for(
            f"http://127.0.0.1:{port}", server={"connect_timeout_s": 1, "max_retries": 0}
        )
        async with running_gateway(config, litellm=False) as gw:
            status, _, body = await asyncio.wait_for(_post(gw, CHAT), 20)
            [row] = await rows_when(1)
    assert status == 504 and b"timed out" in body
    assert row["status"] == "upstream_timeout"


async def test_stream_idle_timeout_sends_sse_error(fake: FakeProvider) -> None:
    fake.behaviour.hang_after_chunks = 2
    config = config_for(fake.base, server={"stream_idle_timeout_s": 1})
    async with running_gateway(config, litellm=False) as gw:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                gw.url + "/v1/chat/completions", json={**CHAT, "stream": True}
            ) as resp:
                assert resp.status == 200
                text = (await asyncio.wait_for(resp.read(), 20)).decode()
        [row] = await rows_when(1)
    assert "chatcmpl-fake" in text  # the chunks before the stall got through
    assert "upstream stream went idle" in text and '"type":"timeout_error"' not in text
    assert text.rstrip().endswith("}")  # the last event is the error, not [DONE]
    assert row["status"] == "upstream_timeout"
    assert len(fake.seen) == 1  # bytes had reached the client: never retried


async def test_streams_have_no_total_time_cap(fake: FakeProvider) -> None:
    fake.behaviour.chunk_delay_s = 0.3
    fake.behaviour.chunks = 8  # about 3 s of streaming against a 1 s request timeout
    config = config_for(fake.base, server={"request_timeout_s": 1})
    async with running_gateway(config, litellm=False) as gw:
        async with client(gw) as oai:
            stream = await oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        [row] = await rows_when(1)
    assert text == "Hello from the fake upstream."
    assert row["status"] == "ok"


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_are_retried(fake: FakeProvider, status: int) -> None:
    fake.behaviour.fail_status, fake.behaviour.fail_times = status, 2
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        result, _, _ = await _post(gw, CHAT)
    assert result == 200
    assert len(fake.seen) == 3


@pytest.mark.parametrize("status", [400, 401, 500, 502])
async def test_other_statuses_are_not_retried(fake: FakeProvider, status: int) -> None:
    fake.behaviour.fail_status, fake.behaviour.fail_times = status, 1
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        result, _, _ = await _post(gw, CHAT)
    assert result == status
    assert len(fake.seen) == 1


async def test_retry_after_is_honoured(fake: FakeProvider) -> None:
    b = fake.behaviour
    b.fail_status, b.fail_times, b.fail_headers = 503, 1, {"Retry-After": "1"}
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        assert (await _post(gw, CHAT))[0] == 200
    first, second = fake.seen
    assert second.at - first.at >= 0.95


async def test_long_retry_after_is_passed_to_the_client(fake: FakeProvider) -> None:
    b = fake.behaviour
    b.fail_status, b.fail_times, b.fail_headers = 429, 1, {"Retry-After": "60"}
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        status, headers, _ = await _post(gw, CHAT)
    assert status == 429 and len(fake.seen) == 1
    assert headers["Retry-After"] == "60"


async def test_connect_errors_are_retried_then_reported(fake: FakeProvider) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    async with running_gateway(config_for(dead, server={"max_retries": 2}), litellm=False) as gw:
        before = gw.state.retry_budget._tokens  # full, so this request adds none
        status, _h, body = await _post(gw, CHAT)
        spent = before - gw.state.retry_budget._tokens
    assert status == 502 and b"upstream_unreachable" in body
    assert spent == pytest.approx(2)


async def test_retry_budget_runs_out(fake: FakeProvider) -> None:
    fake.behaviour.fail_status = 503
    config = config_for(fake.base, server={"max_retries": 2, "retry_budget_ratio": 0})
    async with running_gateway(config, litellm=False) as gw:
        for _ in range(5):  # the budget holds 10 retries: 5 requests of 1 + 2 retries each
            assert (await _post(gw, CHAT))[0] == 503
        assert len(fake.seen) == 15
        assert (await _post(gw, CHAT))[0] == 503
        assert len(fake.seen) == 16  # no retry left


@pytest.mark.parametrize("stream", [False, True])
async def test_disconnect_before_first_byte_cancels_upstream(
    fake: FakeProvider, stream: bool
) -> None:
    fake.behaviour.gate = asyncio.Event()
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        task = asyncio.create_task(_post(gw, {**CHAT, "stream": stream}))
        await until(lambda: len(fake.seen) == 1, what="the request at the upstream")
        task.cancel()  # the client goes away while the upstream has not answered
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: fake.cancelled_requests == 1, what="upstream request cancelled")
        [row] = await rows_when(1)
        fake.behaviour.gate.set()
    assert row["status"] == "client_disconnect"
