"""Anthropic Messages routes end to end with the official client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

CACHED_SYSTEM = [
    {"type": "text", "text": "You are a careful engineer.", "cache_control": {"type": "ephemeral"}}
]


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for(fake.base), litellm=False) as gateway:
        yield gateway


def client(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-ant-caller-0001", max_retries=0)


async def test_message_passthrough_is_faithful(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as ant:
        raw = await ant.messages.with_raw_response.create(
            model="claude-test-1",
            max_tokens=100,
            system=CACHED_SYSTEM,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
            extra_body={"future_field": {"keep": True}},
        )
        message = await raw.parse()
    assert message.content[0].type == "text"
    assert message.usage.cache_read_input_tokens == 5
    assert raw.headers["x-memproxy-request-id"].startswith("req_")
    seen = fake.seen[-1]
    assert seen.path == "/v1/messages"
    # The caller's credential arrives exactly as the SDK sent it (x-api-key or bearer).
    sent = seen.headers.get("x-api-key") or seen.headers["authorization"].removeprefix("Bearer ")
    assert sent == "sk-ant-caller-0001"
    assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert seen.headers["anthropic-version"]
    assert seen.body["system"] == CACHED_SYSTEM
    assert seen.body["future_field"] == {"keep": True}


async def test_streaming_events_relayed(gw: RunningGateway) -> None:
    async with client(gw) as ant:
        async with ant.messages.stream(
            model="claude-test-1", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
    assert text == "Hello from the fake upstream."
    assert final.usage.output_tokens == 9


async def test_beta_query_accepted(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as ant:
        message = await ant.post(
            "/v1/messages?beta=true",
            cast_to=object,
            body={
                "model": "claude-test-1",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
            },
            options={"headers": {"anthropic-beta": "context-management-2025-06-27"}},
        )
    assert isinstance(message, dict) and message["content"]
    assert fake.seen[-1].query == "beta=true"


async def test_count_tokens(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as ant:
        counted = await ant.messages.count_tokens(
            model="claude-test-1", messages=[{"role": "user", "content": "hi"}]
        )
        echoed = await ant.messages.count_tokens(
            model="memproxy/echo", messages=[{"role": "user", "content": "hi there " * 20}]
        )
    assert counted.input_tokens == 42
    assert echoed.input_tokens > 10


async def test_echo_shows_system_and_messages(gw: RunningGateway) -> None:
    async with client(gw) as ant:
        message = await ant.messages.create(
            model="memproxy/echo",
            max_tokens=10,
            system="sys!",
            messages=[{"role": "user", "content": "ping"}],
        )
        async with ant.messages.stream(
            model="memproxy/echo", max_tokens=10, messages=[{"role": "user", "content": "ping"}]
        ) as stream:
            streamed = await stream.get_final_message()
    assert message.content[0].type == "text" and '"system": "sys!"' in message.content[0].text
    assert streamed.content[0].type == "text" and "ping" in streamed.content[0].text


async def test_errors_in_anthropic_shape(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as ant:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await ant.messages.create(
                model="mystery", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        fake.behaviour.fail_status = 529
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            await ant.messages.create(
                model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},
    }
    assert overloaded.value.status_code == 529


async def test_missing_messages_is_400(gw: RunningGateway) -> None:
    async with client(gw) as ant:
        with pytest.raises(anthropic.BadRequestError) as err:
            await ant.post("/v1/messages", cast_to=object, body={"model": "claude-x"})
    assert err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
