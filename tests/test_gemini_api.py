"""The native Gemini API through the gateway, driven by the official google-genai client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from memproxy_cli.config import Config, parse_config
from tests.fixtures.fake_gemini import FakeGemini
from tests.fixtures.fake_messages import FakeMessages
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, running_gateway
from tests.fixtures.reliability import rows_when

KEY = "gm-caller-key-123456"
CONFIGURED_ANTHROPIC_KEY = "sk-ant-configured-5555"
FACT = "Our billing service runs on CockroachDB 24, cluster ledger-east."


@pytest.fixture
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    fake = await FakeGemini().start()
    yield fake
    await fake.close()


@pytest.fixture
async def fake_messages() -> AsyncIterator[FakeMessages]:
    fake = await FakeMessages().start()
    yield fake
    await fake.close()


def gemini_config(
    gemini: str, other: str = "http://127.0.0.1:9", memory: str = "none", **extra: Any
) -> Config:
    raw: dict[str, Any] = {
        "upstreams": {"openai": other, "anthropic": other, "gemini": gemini},
        "memory": {"backend": memory},
        **extra,
    }
    return parse_config(yaml.safe_dump(raw), "test-config.yaml")


@pytest.fixture
async def gw(
    fake_gemini: FakeGemini, fake_messages: FakeMessages, fake: FakeProvider
) -> AsyncIterator[RunningGateway]:
    config = gemini_config(
        fake_gemini.base,
        model_list=[
            {
                "model_name": "claude-test",
                "litellm_params": {
                    "model": "anthropic/claude-test-1",
                    "api_base": fake_messages.base,
                    "api_key": CONFIGURED_ANTHROPIC_KEY,
                },
            },
            {
                "model_name": "gpt-test",
                "litellm_params": {
                    "model": "openai/gpt-test-1",
                    "api_base": fake.base + "/v1",
                    "api_key": "sk-openai-configured-5555",
                },
            },
            {
                "model_name": "team-gemini",
                "litellm_params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_base": fake_gemini.base + "/v1beta",
                    "api_key": "gm-configured-key-9999",
                },
            },
        ],
    )
    async with running_gateway(config) as gateway:
        yield gateway


def client(
    gw: RunningGateway, project: str | None = None, api_version: str | None = None
) -> genai.Client:
    headers = {"x-memproxy-project": project} if project else None
    options = types.HttpOptions(base_url=gw.url, headers=headers, api_version=api_version)
    return genai.Client(api_key=KEY, http_options=options)


def _tool_config() -> types.GenerateContentConfig:
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="read_file",
                description="Read a file",
                parameters_json_schema={
                    "type": "object",
                    "properties": {"file_path": {"type": "string"}},
                    "required": ["file_path"],
                },
            )
        ]
    )
    return types.GenerateContentConfig(
        tools=[tool],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def _files_holding(home: Path, secret: str) -> list[str]:
    return [p.name for p in home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


# -- passthrough to the Gemini API ------------------------------------------------------------


async def test_generate_content_passes_through_with_usage_in_the_row(
    gw: RunningGateway, fake_gemini: FakeGemini
) -> None:
    fake_gemini.behaviour.reply = "Gemini through memproxy."
    response = await client(gw).aio.models.generate_content(
        model="gemini-2.5-flash", contents="Hello"
    )
    assert response.text == "Gemini through memproxy."
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 24
    seen = fake_gemini.generations[0]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == KEY
    row = (await rows_when(1))[0]
    assert row["endpoint"] == "/v1/models/gemini-2.5-flash:generateContent"  # google-genai 3
    assert row["model"] == "gemini-2.5-flash" and row["provider"] == "gemini"
    assert row["status"] == "ok" and row["stream"] in (0, False)
    assert row["prompt_tokens"] == 24
    assert row["completion_tokens"] == 8 + 5  # candidates + thoughts
    assert row["cache_read_tokens"] == 4
    assert row["cost_usd"] and row["cost_usd"] > 0


async def test_stream_is_relayed_byte_for_byte(gw: RunningGateway, fake_gemini: FakeGemini) -> None:
    fake_gemini.behaviour.reply = "A streamed answer in pieces."
    stream = await client(gw).aio.models.generate_content_stream(
        model="gemini-2.5-pro", contents="Hello"
    )
    chunks = [c async for c in stream]
    assert "".join(c.text or "" for c in chunks) == "A streamed answer in pieces."
    seen = fake_gemini.generations[0]
    assert seen.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    assert seen.query == "alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
    url = gw.url + "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers={"x-goog-api-key": KEY}) as resp:
            relayed = await resp.read()
        direct_url = fake_gemini.base + "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
        async with http.post(
            direct_url + "?alt=sse", json=body, headers={"x-goog-api-key": KEY}
        ) as direct:
            expected = await direct.read()
    assert relayed.replace(b"fakeResp0002", b"X") == expected.replace(b"fakeResp0003", b"X")
    rows = await rows_when(2)
    streamed = [r for r in rows if r["stream"]]
    assert all(r["completion_tokens"] == 13 and r["status"] == "ok" for r in streamed)


async def test_stream_without_alt_sse_is_one_json_array(
    gw: RunningGateway, fake_gemini: FakeGemini
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
    url = gw.url + "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers={"x-goog-api-key": KEY}) as resp:
            assert resp.status == 200
            chunks = await resp.json()
    assert isinstance(chunks, list) and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    row = (await rows_when(1))[0]
    assert row["completion_tokens"] == 13 and row["prompt_tokens"] == 24


async def test_function_call_round_trip(gw: RunningGateway, fake_gemini: FakeGemini) -> None:
    fake_gemini.script_tool_call("read_file", {"file_path": "notes.txt"})
    config = _tool_config()
    gem = client(gw)
    first = await gem.aio.models.generate_content(
        model="gemini-2.5-pro", contents="Read notes.txt", config=config
    )
    assert first.function_calls and first.function_calls[0].name == "read_file"
    assert first.candidates and first.candidates[0].content
    contents = [
        types.Content(role="user", parts=[types.Part(text="Read notes.txt")]),
        first.candidates[0].content,
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(
                    name="read_file", response={"output": "deploy to blue"}
                )
            ],
        ),
    ]
    second = await gem.aio.models.generate_content(
        model="gemini-2.5-pro", contents=contents, config=config
    )
    assert second.text == fake_gemini.behaviour.reply
    sent = fake_gemini.generations[1].body["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"]  # the signature goes back untouched
    assert sent[2]["parts"][0]["functionResponse"]["response"] == {"output": "deploy to blue"}


async def test_key_in_query_is_moved_to_a_header_and_never_stored(
    gw: RunningGateway, fake_gemini: FakeGemini, memproxy_home: Path
) -> None:
    secret = "gm-query-secret-abcdef123456"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    url = gw.url + "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, params={"alt": "sse", "key": secret}, json=body) as resp:
            assert resp.status == 200
            await resp.read()
    seen = fake_gemini.generations[0]
    assert seen.query == "alt=sse"
    assert seen.headers["x-goog-api-key"] == secret
    rows = await rows_when(1)
    assert secret not in json.dumps(rows)
    assert "key=" not in rows[0]["endpoint"]
    assert await asyncio.to_thread(_files_holding, memproxy_home, secret) == []


async def test_configured_gemini_model_uses_its_base_and_key(
    gw: RunningGateway, fake_gemini: FakeGemini
) -> None:
    response = await client(gw).aio.models.generate_content(model="team-gemini", contents="Hi")
    assert response.text == fake_gemini.behaviour.reply
    seen = fake_gemini.generations[0]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == "gm-configured-key-9999"


async def test_count_tokens_and_models(gw: RunningGateway, fake_gemini: FakeGemini) -> None:
    gem = client(gw)
    counted = await gem.aio.models.count_tokens(model="gemini-2.5-pro", contents="Hello")
    assert counted.total_tokens == 17
    estimated = await gem.aio.models.count_tokens(model="claude-test", contents="Hello")
    assert estimated.total_tokens and estimated.total_tokens > 0
    names = [m.name async for m in await gem.aio.models.list()]
    assert "models/gemini-2.5-flash" in names and "models/memproxy/echo" in names
    assert "models/claude-test" in names
    # GET /v1/models/{id} is OpenAI's; a single model is served at /v1beta.
    beta = client(gw, api_version="v1beta")
    model = await beta.aio.models.get(model="gemini-2.5-pro")
    assert model.input_token_limit == 1048576
    ours = await beta.aio.models.get(model="claude-test")
    assert ours.name == "models/claude-test"
    assert all(k == KEY for k in fake_gemini.keys_used)


# -- errors --------------------------------------------------------------------------------


async def test_errors_in_gemini_shape(gw: RunningGateway, fake_gemini: FakeGemini) -> None:
    async with aiohttp.ClientSession() as http:
        url = gw.url + "/v1beta/models/gemini-2.5-pro:generateContent"
        async with http.post(url, json={"contents": "nope"}) as bad:
            assert bad.status == 400
            error = (await bad.json())["error"]
            assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
            assert "contents" in error["message"]
        async with http.post(gw.url + "/v1beta/files:upload", json={}) as unknown:
            assert unknown.status == 404
            error = (await unknown.json())["error"]
            assert error["status"] == "NOT_FOUND" and "/v1beta/files:upload" in error["message"]
            assert unknown.headers["x-memproxy-request-id"]
    fake_gemini.script_failure(403, "permission denied", "PERMISSION_DENIED")
    with pytest.raises(genai_errors.ClientError) as raised:
        await client(gw).aio.models.generate_content(model="gemini-2.5-pro", contents="Hi")
    assert raised.value.code == 403 and raised.value.status == "PERMISSION_DENIED"
    with pytest.raises(genai_errors.ClientError) as missing:
        await client(gw).aio.models.generate_content(model="llama-unknown", contents="Hi")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"


# -- echo and memory -------------------------------------------------------------------------


async def test_echo_answers_plain_and_streamed(gw: RunningGateway) -> None:
    gem = client(gw)
    whole = await gem.aio.models.generate_content(model="memproxy/echo", contents="Echo me")
    assert whole.text and "Echo me" in whole.text
    stream = await gem.aio.models.generate_content_stream(model="memproxy/echo", contents="Echo me")
    chunks = [c async for c in stream]
    assert "Echo me" in "".join(c.text or "" for c in chunks)
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == "STOP"


@pytest.fixture
async def memory_gw(fake_gemini: FakeGemini) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gemini_config(fake_gemini.base, memory="local")) as gateway:
        yield gateway


@pytest.mark.parametrize("stream", [False, True])
async def test_fact_is_stored_and_recalled_into_the_last_user_content(
    memory_gw: RunningGateway, fake_gemini: FakeGemini, stream: bool
) -> None:
    fake_gemini.behaviour.reply = "Noted: CockroachDB 24 on ledger-east."
    gem = client(memory_gw, "ledger")
    if stream:
        [
            c
            async for c in await gem.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents=FACT
            )
        ]
    else:
        await gem.aio.models.generate_content(model="gemini-2.5-flash", contents=FACT)
    assert memory_gw.state.memory is not None
    await memory_gw.state.memory.drain(10)
    backend = memory_gw.state.memory.backend_for(memory_gw.state.config.memory)
    stored = await backend.list("ledger")
    assert len(stored) == 1 and "Noted: CockroachDB 24" in stored[0].text
    contents = [
        types.Content(role="user", parts=[types.Part(text="hello")]),
        types.Content(role="model", parts=[types.Part(text="hi")]),
        types.Content(role="user", parts=[types.Part(text="Which database does billing use?")]),
    ]
    config = types.GenerateContentConfig(system_instruction="You are terse.")
    await gem.aio.models.generate_content(model="gemini-2.5-pro", contents=contents, config=config)
    sent = fake_gemini.generations[-1].body
    assert sent["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    assert sent["contents"][:2] == [
        {"role": "user", "parts": [{"text": "hello"}]},
        {"role": "model", "parts": [{"text": "hi"}]},
    ]
    last = sent["contents"][-1]["parts"]
    assert last[0] == {"text": "Which database does billing use?"}
    assert "ledger-east" in last[-1]["text"]


async def test_function_response_turn_is_not_the_user(
    memory_gw: RunningGateway, fake_gemini: FakeGemini
) -> None:
    gem = client(memory_gw, "ledger")
    await gem.aio.models.generate_content(model="gemini-2.5-flash", contents=FACT)
    assert memory_gw.state.memory is not None
    await memory_gw.state.memory.drain(10)
    contents = [
        types.Content(role="user", parts=[types.Part(text="Which database does billing use?")]),
        types.Content(
            role="model",
            parts=[types.Part.from_function_call(name="grep", args={"q": "database"})],
        ),
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="grep", response={"output": "x"})],
        ),
    ]
    await gem.aio.models.generate_content(model="gemini-2.5-pro", contents=contents)
    assert "ledger-east" not in json.dumps(fake_gemini.generations[-1].body)
