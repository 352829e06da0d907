"""Requests that need translation go through the LiteLLM SDK to a fake upstream of the other API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    config = config_for(
        "http://127.0.0.1:9",
        model_list=[
            {
                "model_name": "claude-via-openai",
                "litellm_params": {
                    "model": "anthropic/claude-test-1",
                    "api_base": fake.base,
                    "api_key": "sk-ant-configured-000001",
                },
            },
            {
                "model_name": "gpt-via-anthropic",
                "litellm_params": {
                    "model": "openai/gpt-test",
                    "api_base": fake.base + "/v1",
                    "api_key": "sk-openai-configured-0001",
                },
            },
        ],
    )
    async with running_gateway(config) as gateway:
        yield gateway


async def test_openai_request_to_anthropic_model(gw: RunningGateway, fake: FakeProvider) -> None:
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as oai:
        result = await oai.chat.completions.create(
            model="claude-via-openai",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            max_tokens=50,
        )
        stream = await oai.chat.completions.create(
            model="claude-via-openai",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=50,
            stream=True,
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert result.choices[0].message.content == "Hello from the fake upstream."
    assert streamed == "Hello from the fake upstream."
    seen = fake.seen[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-ant-configured-000001"
    assert seen.body["system"] in ("be brief", [{"type": "text", "text": "be brief"}])
    assert gw.litellm is not None and gw.litellm.ready


async def test_anthropic_request_to_openai_model(gw: RunningGateway, fake: FakeProvider) -> None:
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key="x", max_retries=0) as ant:
        message = await ant.messages.create(
            model="gpt-via-anthropic", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        async with ant.messages.stream(
            model="gpt-via-anthropic", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            streamed = "".join([t async for t in stream.text_stream])
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake upstream."
    assert streamed == "Hello from the fake upstream."
    assert fake.seen[0].path == "/v1/chat/completions"
    assert fake.seen[0].headers["Authorization"] == "Bearer sk-openai-configured-0001"


async def test_translation_error_keeps_openai_shape(gw: RunningGateway, fake: FakeProvider) -> None:
    fake.behaviour.fail_status = 400
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as oai:
        with pytest.raises(openai.BadRequestError) as err:
            await oai.chat.completions.create(
                model="claude-via-openai",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=5,
            )
    assert "sk-ant-configured-000001" not in str(err.value.body)
