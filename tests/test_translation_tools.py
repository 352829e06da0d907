"""Translation with tools, images and system prompts, both ways, streamed tool deltas included.

Claude Code driving a GPT model (Anthropic Messages in, OpenAI chat upstream) and opencode
driving a Claude model (OpenAI chat in, Anthropic Messages upstream), through LiteLLM.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fixtures.fake_messages import FakeMessages
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import rows_when

WEATHER_ANTHROPIC: Any = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
WEATHER_OPENAI: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": WEATHER_ANTHROPIC["input_schema"],
    },
}
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.fixture
async def messages_fake() -> AsyncIterator[FakeMessages]:
    fake = await FakeMessages().start()
    yield fake
    await fake.close()


@pytest.fixture
async def gw(fake: FakeProvider, messages_fake: FakeMessages) -> AsyncIterator[RunningGateway]:
    config = config_for(
        "http://127.0.0.1:9",
        model_list=[
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": fake.base + "/v1",
                    "api_key": "sk-openai-configured-0001",
                },
            },
            {
                "model_name": "claude-sonnet-4-5",
                "litellm_params": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_base": messages_fake.base,
                    "api_key": "sk-ant-configured-000001",
                },
            },
        ],
    )
    async with running_gateway(config) as gateway:
        yield gateway


# LiteLLM's first call in a process loads it; on a loaded machine that takes seconds.
PATIENT = 120.0


def _ant(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="x", max_retries=0, timeout=PATIENT)


def _oai(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=PATIENT)


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_client_drives_a_gpt_model_through_a_tool_loop(
    gw: RunningGateway, fake: FakeProvider, stream: bool
) -> None:
    fake.behaviour.tool_calls.append(("get_weather", {"city": "Paris"}))
    fake.behaviour.reply = "It is sunny in Paris."
    first: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    async with _ant(gw) as ant:
        if stream:
            async with ant.messages.stream(
                model="gpt-4o",
                max_tokens=100,
                system="Be brief.",
                tools=[WEATHER_ANTHROPIC],
                messages=first,
            ) as s:
                reply = await s.get_final_message()
        else:
            reply = await ant.messages.create(
                model="gpt-4o",
                max_tokens=100,
                system="Be brief.",
                tools=[WEATHER_ANTHROPIC],
                messages=first,
            )
        assert reply.stop_reason == "tool_use"
        tool_use = next(b for b in reply.content if b.type == "tool_use")
        assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
        follow = [
            *first,
            {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny, 24C"}
                ],
            },
        ]
        final = await ant.messages.create(
            model="gpt-4o", max_tokens=100, tools=[WEATHER_ANTHROPIC], messages=follow
        )
    assert final.content[0].type == "text" and final.content[0].text == "It is sunny in Paris."
    sent_first, sent_follow = fake.seen[0].body, fake.seen[1].body
    assert sent_first["tools"][0]["function"]["name"] == "get_weather"
    assert sent_first["messages"][0] == {"role": "system", "content": "Be brief."}
    tool_message = next(m for m in sent_follow["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == tool_use.id
    assert "sunny, 24C" in json.dumps(tool_message["content"])
    rows = await rows_when(2)
    assert all(r["status"] == "ok" and r["prompt_tokens"] for r in rows)


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_client_drives_a_claude_model_through_a_tool_loop(
    gw: RunningGateway, messages_fake: FakeMessages, stream: bool
) -> None:
    messages_fake.script_tool_use("get_weather", {"city": "Oslo"})
    messages_fake.script_text("Snow in Oslo.")
    first: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
    ]
    async with _oai(gw) as oai:
        if stream:
            chunks = await oai.chat.completions.create(
                model="claude-sonnet-4-5", messages=first, tools=[WEATHER_OPENAI], stream=True
            )
            name, arguments, call_id, finish = "", "", "", None
            async for chunk in chunks:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or []:
                    call_id = delta.id or call_id
                    if delta.function is not None:
                        name += delta.function.name or ""
                        arguments += delta.function.arguments or ""
        else:
            result = await oai.chat.completions.create(
                model="claude-sonnet-4-5", messages=first, tools=[WEATHER_OPENAI]
            )
            call = result.choices[0].message.tool_calls[0]  # type: ignore[index]
            assert call.type == "function"
            name, arguments, call_id = call.function.name, call.function.arguments, call.id
            finish = result.choices[0].finish_reason
        assert finish == "tool_calls"
        assert name == "get_weather" and json.loads(arguments) == {"city": "Oslo"}
        follow = [
            *first,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "snow, -3C"},
        ]
        final = await oai.chat.completions.create(
            model="claude-sonnet-4-5", messages=follow, tools=[WEATHER_OPENAI]
        )
    assert final.choices[0].message.content == "Snow in Oslo."
    sent_first, sent_follow = messages_fake.seen[0].body, messages_fake.seen[1].body
    assert sent_first["tools"][0]["name"] == "get_weather"
    assert "Be brief." in json.dumps(sent_first["system"])
    results = [
        b
        for m in sent_follow["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert results and results[0]["tool_use_id"] == call_id
    assert "snow, -3C" in json.dumps(results[0]["content"])


async def test_images_cross_in_both_directions(
    gw: RunningGateway, fake: FakeProvider, messages_fake: FakeMessages
) -> None:
    async with _ant(gw) as ant:
        await ant.messages.create(
            model="gpt-4o",
            max_tokens=50,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                        {"type": "text", "text": "what is this?"},
                    ],
                }
            ],
        )
    async with _oai(gw) as oai:
        await oai.chat.completions.create(
            model="claude-sonnet-4-5",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
                        },
                        {"type": "text", "text": "what is this?"},
                    ],
                }
            ],
        )
    to_openai = fake.seen[0].body["messages"][0]["content"]
    assert any(
        part.get("type") == "image_url" and PIXEL in part["image_url"]["url"] for part in to_openai
    )
    to_anthropic = messages_fake.seen[0].body["messages"][0]["content"]
    assert any(
        block.get("type") == "image" and block["source"].get("data") == PIXEL
        for block in to_anthropic
    )


CONTEXT_ERROR = json.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
).encode()


def _no_internals(text: str) -> None:
    for marker in ("Traceback", "litellm.", "Exception", "Error:", ".py", "/site-packages/"):
        assert marker not in text, (marker, text)


@pytest.mark.parametrize(
    ("status", "body", "anthropic_type", "openai_code"),
    [
        (400, CONTEXT_ERROR, "invalid_request_error", "context_length_exceeded"),
        (429, None, "rate_limit_error", "rate_limit_exceeded"),
        (401, None, "authentication_error", "invalid_api_key"),
    ],
)
async def test_translated_errors_speak_the_clients_api(
    fake: FakeProvider,
    status: int,
    body: bytes | None,
    anthropic_type: str,
    openai_code: str,
) -> None:
    fake.behaviour.fail_status, fake.behaviour.fail_body = status, body
    config = config_for(
        "http://127.0.0.1:9",
        server={"max_retries": 0},
        model_list=[
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": fake.base + "/v1",
                    "api_key": "sk-openai-configured-0001",
                    "max_retries": 0,
                },
            },
            {
                "model_name": "claude-x",
                "litellm_params": {
                    "model": "anthropic/claude-x",
                    "api_base": fake.base,
                    "api_key": "sk-ant-configured-000001",
                    "max_retries": 0,
                },
            },
        ],
    )
    async with running_gateway(config) as gw:
        async with _ant(gw) as ant:
            with pytest.raises(anthropic.APIStatusError) as ant_err:
                await ant.messages.create(
                    model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
                )
        async with _oai(gw) as oai:
            with pytest.raises(openai.APIStatusError) as oai_err:
                await oai.chat.completions.create(
                    model="claude-x", messages=[{"role": "user", "content": "hi"}]
                )
        rows = await rows_when(2)
    assert ant_err.value.status_code == status
    ant_body: Any = ant_err.value.body
    assert ant_body["type"] == "error" and ant_body["error"]["type"] == anthropic_type
    _no_internals(json.dumps(ant_body))
    if body is not None:
        assert "maximum context length" in ant_body["error"]["message"]
    assert oai_err.value.status_code == status
    oai_body: Any = oai_err.value.body
    assert oai_body["code"] == openai_code
    _no_internals(json.dumps(oai_body))
    for row in rows:
        assert row["http_status"] == status
        _no_internals(row["error"] or "")
        assert "sk-" not in (row["error"] or "")
