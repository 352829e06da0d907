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
        # A budget a loaded machine can meet (see tests/fixtures/gateway.py config_for).
        "memory": {"backend": memory, "recall_timeout_ms": 30_000},
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
    assert row["client"] == "google-genai"
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


async def test_the_gateway_key_is_taken_from_x_goog_api_key_never_from_the_url(
    fake_gemini: FakeGemini,
) -> None:
    """With server.master_key set, the google-genai client (x-goog-api-key) gets in, and the
    gateway key in `?key=` does not (a URL is no place for a secret), nor is it sent upstream."""
    master = "mp-master-key-for-gemini-0123456789"
    entry = {
        "model_name": "team-gemini",
        "litellm_params": {
            "model": "gemini/gemini-2.5-flash",
            "api_base": fake_gemini.base + "/v1beta",
            "api_key": "gm-configured-key-9999",
        },
    }
    config = gemini_config(fake_gemini.base, server={"master_key": master}, model_list=[entry])
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    async with running_gateway(config, litellm=False) as gateway:
        options = types.HttpOptions(base_url=gateway.url)
        gemini = genai.Client(api_key=master, http_options=options)
        answer = await gemini.aio.models.generate_content(model="team-gemini", contents="Hi")
        assert answer.text
        url = gateway.url + "/v1beta/models/team-gemini:generateContent"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, params={"key": master}, json=body) as resp:
                assert resp.status == 401
                error = await resp.json()
    assert error["error"]["status"] == "UNAUTHENTICATED"
    assert len(fake_gemini.generations) == 1
    assert fake_gemini.generations[0].headers["x-goog-api-key"] == "gm-configured-key-9999"


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
    assert memory_gw.memory is not None
    await memory_gw.memory.drain(10)
    backend = memory_gw.memory.backend_for(memory_gw.state.config.memory)
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
    assert memory_gw.memory is not None
    await memory_gw.memory.drain(10)
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


# -- translation for other providers ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_translated_to_an_anthropic_model_with_a_tool_round_trip(
    gw: RunningGateway, fake_messages: FakeMessages, stream: bool
) -> None:
    fake_messages.script_tool_use("read_file", {"file_path": "notes.txt"}, text="Reading.")
    fake_messages.reply = "notes.txt says deploy to blue."
    gem = client(gw)
    config = _tool_config()
    config.system_instruction = "You are terse."

    async def ask(contents: Any) -> types.GenerateContentResponse:
        if not stream:
            return await gem.aio.models.generate_content(
                model="claude-test", contents=contents, config=config
            )
        chunks = [
            c
            async for c in await gem.aio.models.generate_content_stream(
                model="claude-test", contents=contents, config=config
            )
        ]
        assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == "STOP"
        parts = [p for c in chunks if c.candidates for p in c.candidates[0].content.parts]
        merged = types.Content(role="model", parts=parts)
        candidate = types.Candidate(content=merged, finish_reason="STOP")
        return types.GenerateContentResponse(
            candidates=[candidate], usage_metadata=chunks[-1].usage_metadata
        )

    first = await ask("Read notes.txt")
    assert first.function_calls and first.function_calls[0].name == "read_file"
    assert first.function_calls[0].args == {"file_path": "notes.txt"}
    assert first.function_calls[0].id and first.function_calls[0].id.startswith("toolu_")
    assert "Reading." in "".join(p.text or "" for p in first.candidates[0].content.parts)
    call = first.function_calls[0]
    contents = [
        types.Content(role="user", parts=[types.Part(text="Read notes.txt")]),
        first.candidates[0].content,
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id=call.id, name="read_file", response={"output": "deploy to blue"}
                    )
                )
            ],
        ),
    ]
    second = await ask(contents)
    assert "deploy to blue" in "".join(p.text or "" for p in second.candidates[0].content.parts)
    sent = [s for s in fake_messages.seen if s.path == "/v1/messages"]
    assert len(sent) == 2
    assert all(s.headers["x-api-key"] == CONFIGURED_ANTHROPIC_KEY for s in sent)
    first_body, second_body = sent[0].body, sent[1].body
    assert first_body["model"] == "claude-test-1"
    assert "You are terse." in json.dumps(first_body["system"])
    assert first_body["tools"][0]["name"] == "read_file"
    assert first_body["tools"][0]["input_schema"]["properties"] == {"file_path": {"type": "string"}}
    tool_use = next(b for b in second_body["messages"][1]["content"] if b["type"] == "tool_use")
    result = second_body["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == tool_use["id"]
    assert "deploy to blue" in json.dumps(result["content"])
    rows = await rows_when(2)
    assert all(r["provider"] == "litellm:anthropic" and r["status"] == "ok" for r in rows)
    assert all(r["prompt_tokens"] and r["completion_tokens"] for r in rows)


@pytest.mark.parametrize("stream", [False, True])
async def test_translated_to_an_openai_model(
    gw: RunningGateway, fake: FakeProvider, stream: bool
) -> None:
    fake.behaviour.reply = "OpenAI answers Gemini."
    gem = client(gw)
    contents = [
        types.Content(role="user", parts=[types.Part(text="Read notes.txt")]),
        types.Content(
            role="model",
            parts=[types.Part.from_function_call(name="read_file", args={"file_path": "n"})],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name="read_file", response={"output": "blue"})
            ],
        ),
    ]
    config = _tool_config()
    config.max_output_tokens = 77
    config.temperature = 0.25
    if stream:
        chunks = [
            c
            async for c in await gem.aio.models.generate_content_stream(
                model="gpt-test", contents=contents, config=config
            )
        ]
        text = "".join(c.text or "" for c in chunks)
        assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.prompt_token_count
    else:
        response = await gem.aio.models.generate_content(
            model="gpt-test", contents=contents, config=config
        )
        text = response.text or ""
        assert response.usage_metadata and response.usage_metadata.candidates_token_count
    assert text == "OpenAI answers Gemini."
    sent = next(s for s in fake.seen if s.path == "/v1/chat/completions")
    body = sent.body
    assert sent.headers["Authorization"] == "Bearer sk-openai-configured-5555"
    assert body["model"] == "gpt-test-1"
    assert body["max_tokens"] == 77 and body["temperature"] == 0.25
    assert body["tools"][0]["function"]["name"] == "read_file"
    assert body["tools"][0]["function"]["parameters"]["required"] == ["file_path"]
    assistant, tool = body["messages"][1], body["messages"][2]
    assert assistant["tool_calls"][0]["function"]["name"] == "read_file"
    assert tool["role"] == "tool" and tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert tool["content"] == "blue"
    row = (await rows_when(1))[0]
    assert row["provider"] == "litellm:openai" and row["prompt_tokens"]


def _hostile(attacker: FakeProvider) -> dict[str, Any]:
    """Everything LiteLLM would read as configuration, pointing at the attacker."""
    return {
        "timeout": 0.0001,
        "fallbacks": [{"model": "openai/x", "api_base": attacker.base + "/v1"}],
        "num_retries": 3,
        "mock_response": "pwned",
        "litellm_metadata": {"x": 1},
        "model_list": [{"model_name": "x", "litellm_params": {"api_base": attacker.base}}],
        "base_model": "openai/x",
        "callbacks": ["langfuse"],
        "extra_body": {"api_base": attacker.base},
        "proxy_server_request": {"url": attacker.base},
        "cachedContent": "cachedContents/x",
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}],
    }


@pytest.fixture
async def attacker() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    yield provider
    await provider.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_request_cannot_redirect_a_configured_key(
    gw: RunningGateway,
    fake_messages: FakeMessages,
    attacker: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    from memproxy_cli.api.openai_chat import OPENAI_CHAT_FIELDS

    assert gw.litellm is not None
    litellm = await gw.litellm.module()
    calls: list[dict[str, Any]] = []
    real = litellm.acompletion

    async def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await real(**kwargs)

    monkeypatch.setattr(litellm, "acompletion", spy)
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {
            "maxOutputTokens": 20,
            "api_base": attacker.base,
            "fallbacks": [{"api_base": attacker.base}],
            "mock_response": "pwned",
        },
        **_hostile(attacker),
    }
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    url = f"{gw.url}/v1beta/models/claude-test:{method}"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers={"x-goog-api-key": KEY}) as resp:
            text = await resp.text()
            assert resp.status == 200, text
    assert "pwned" not in text and fake_messages.reply in text
    assert attacker.seen == []
    sent = [s for s in fake_messages.seen if s.path == "/v1/messages"]
    assert len(sent) == 1 and sent[0].headers["x-api-key"] == CONFIGURED_ANTHROPIC_KEY
    ours = {"model", "messages", "api_key", "api_base", "shared_session", "stream"}
    assert len(calls) == 1
    assert set(calls[0]) <= ours | OPENAI_CHAT_FIELDS, set(calls[0]) - ours - OPENAI_CHAT_FIELDS
    assert attacker.base not in repr({k: v for k, v in calls[0].items() if k != "messages"})


# -- other APIs asking for Gemini models -----------------------------------------------------


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "team-gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_chat_completions_to_a_gemini_model(
    gw: RunningGateway, fake_gemini: FakeGemini, model: str, stream: bool
) -> None:
    """Unconfigured gemini-* on /v1/chat/completions: LiteLLM's gemini provider on
    upstreams.gemini with the caller's key; configured ones with their base and key."""
    import openai

    fake_gemini.behaviour.reply = "Gemini answers OpenAI."
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0) as oai:
        if stream:
            chunks = [
                c
                async for c in await oai.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Hi"}], stream=True
                )
            ]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = await oai.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi"}]
            )
            text = reply.choices[0].message.content or ""
    assert text == "Gemini answers OpenAI."
    seen = fake_gemini.generations[0]
    method = "streamGenerateContent" if stream else "generateContent"
    assert seen.path == f"/v1beta/models/gemini-2.5-flash:{method}"
    expected = KEY if model.startswith("gemini-") else "gm-configured-key-9999"
    assert fake_gemini.keys_used[-1] == expected
    row = (await rows_when(1))[0]
    assert row["provider"] == "litellm:gemini" and row["prompt_tokens"] == 24


async def test_messages_to_a_gemini_model(gw: RunningGateway, fake_gemini: FakeGemini) -> None:
    import anthropic

    fake_gemini.behaviour.reply = "Gemini answers Anthropic."
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=KEY, max_retries=0) as ant:
        message = await ant.messages.create(
            model="gemini-2.5-flash",
            max_tokens=50,
            messages=[{"role": "user", "content": "Hi"}],
        )
    block = message.content[0]
    assert block.type == "text" and block.text == "Gemini answers Anthropic."
    assert fake_gemini.keys_used == [KEY]
    assert fake_gemini.generations[0].path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_openapi_tool_schemas_become_json_schema() -> None:
    from memproxy_cli.api.gemini import without_key
    from memproxy_cli.api.gemini_translate import chat_options

    request = {
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "grep",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"q": {"type": "STRING", "nullable": True}},
                            "propertyOrdering": ["q"],
                        },
                    }
                ]
            },
            {"googleSearch": {}},
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["grep"]}},
        "generation_config": {"max_output_tokens": 9, "responseMimeType": "application/json"},
    }
    options = chat_options(request)
    assert options["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "grep",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    assert options["tool_choice"] == {"type": "function", "function": {"name": "grep"}}
    assert options["max_tokens"] == 9
    assert options["response_format"] == {"type": "json_object"}
    assert without_key("alt=sse&key=abc") == "alt=sse"
    assert without_key("key=abc") == ""
    assert without_key("$alt=json;enum-encoding%3Dint&key=a&apikey=b") == (
        "$alt=json;enum-encoding%3Dint&apikey=b"
    )


async def test_gemini_cli_session_context_is_not_stored(
    memory_gw: RunningGateway, fake_gemini: FakeGemini
) -> None:
    """Gemini CLI's environment part (date, OS, folder tree) is context, not the user's words."""
    context = (
        "<session_context>\nThis is the Gemini CLI.\nMy operating system is: linux\n"
        "</session_context>"
    )
    contents = [types.Content(role="user", parts=[types.Part(text=context), types.Part(text=FACT)])]
    await client(memory_gw, "ledger").aio.models.generate_content(
        model="gemini-2.5-flash", contents=contents
    )
    assert memory_gw.memory is not None
    await memory_gw.memory.drain(10)
    backend = memory_gw.memory.backend_for(memory_gw.state.config.memory)
    stored = await backend.list("ledger")
    assert len(stored) == 1 and "CockroachDB 24" in stored[0].text
    assert "session_context" not in stored[0].text and "operating system" not in stored[0].text


@pytest.mark.parametrize(
    ("status", "expected"), [(429, "RESOURCE_EXHAUSTED"), (401, "UNAUTHENTICATED")]
)
async def test_translated_errors_in_gemini_shape(
    gw: RunningGateway, fake: FakeProvider, status: int, expected: str
) -> None:
    fake.behaviour.fail_status = status
    with pytest.raises(genai_errors.ClientError) as raised:
        await client(gw).aio.models.generate_content(model="gpt-test", contents="Hi")
    assert raised.value.code == status and raised.value.status == expected
    message = raised.value.message or ""
    for leak in ("Traceback", "site-packages", "litellm.", "Error:"):
        assert leak not in message
    row = (await rows_when(1))[0]
    assert row["http_status"] == status and "Traceback" not in (row["error"] or "")


async def test_structured_side_calls_are_not_turns(
    memory_gw: RunningGateway, fake_gemini: FakeGemini
) -> None:
    """Gemini CLI's model router asks for JSON fitting a schema: no recall, nothing stored."""
    gem = client(memory_gw, "ledger")
    await gem.aio.models.generate_content(model="gemini-2.5-flash", contents=FACT)
    assert memory_gw.memory is not None
    await memory_gw.memory.drain(10)
    schema = {
        "type": "object",
        "properties": {"complexity_reasoning": {"type": "string"}},
        "required": ["complexity_reasoning"],
    }
    config = types.GenerateContentConfig(
        system_instruction="You are a specialized Task Routing AI.",
        response_mime_type="application/json",
        response_json_schema=schema,
    )
    routed = await gem.aio.models.generate_content(
        model="gemini-2.5-flash-lite", contents="Which database does billing use?", config=config
    )
    assert routed.text and "complexity_reasoning" in routed.text
    assert "ledger-east" not in json.dumps(fake_gemini.generations[-1].body)
    await memory_gw.memory.drain(10)
    backend = memory_gw.memory.backend_for(memory_gw.state.config.memory)
    stored = await backend.list("ledger")
    assert len(stored) == 1 and "complexity_reasoning" not in stored[0].text


RECORDED = Path(__file__).parent / "fixtures/clients/gemini-cli-0.61.0"


async def test_recorded_subagent_session_stores_only_the_human_turn(
    memory_gw: RunningGateway, fake_gemini: FakeGemini
) -> None:
    """A recorded Gemini CLI session (router calls, a subagent, a tool loop) replayed: only the
    human's turn is stored, and nothing is recalled into the router or the subagent."""
    gem = client(memory_gw, "notes")
    await gem.aio.models.generate_content(
        model="gemini-2.5-flash", contents="Remember: notes.txt holds the deploy target."
    )
    assert memory_gw.memory is not None
    await memory_gw.memory.drain(10)
    recorded = json.loads((RECORDED / "subagent.json").read_text(encoding="utf-8"))
    headers = {"x-goog-api-key": KEY, "x-memproxy-project": "notes"}
    async with aiohttp.ClientSession() as http:
        for request in recorded:
            url = (
                memory_gw.url
                + request["path"]
                + ("?" + request["query"] if request["query"] else "")
            )
            async with http.post(url, json=request["body"], headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
    await memory_gw.memory.drain(10)
    sent = [s.body for s in fake_gemini.generations[1:]]
    human = [b for b in sent if "Use a subagent" in json.dumps(b["contents"][0])]
    others = [b for b in sent if b not in human or "responseJsonSchema" in json.dumps(b)]
    assert any("memproxy-memories" in json.dumps(b) for b in human)
    assert others and all("memproxy-memories" not in json.dumps(b) for b in others)
    backend = memory_gw.memory.backend_for(memory_gw.state.config.memory)
    stored = [m.text for m in await backend.list("notes")]
    assert len(stored) == 2 and any("Use a subagent to find out" in t for t in stored)
    for text in stored:
        assert "Read notes.txt in the project directory" not in text
        assert "session_context" not in text and "complexity" not in text


@pytest.mark.parametrize(
    "model",
    ["gemini-x/../../v1/cachedContents", "gemini-x%2F..%2Fcached", "gemini-x%23", "gemini-x%3F"],
)
async def test_a_model_name_never_steers_the_upstream_path(
    gw: RunningGateway, fake_gemini: FakeGemini, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemini names the model in the URL: a request's model may not walk the upstream's paths
    (with the daemon's own GEMINI_API_KEY, that would be a request choosing where a key goes)."""
    from tests.fixtures.raw_http import request_head, send_raw

    monkeypatch.setenv("GEMINI_API_KEY", "daemon-gemini-key-000111")
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
    path = f"/v1beta/models/{model}:generateContent"
    head = request_head(path, gw.server.port, f"Content-Length: {len(body)}\r\n\r\n")
    reply = await send_raw(gw.server.port, head + body)
    assert reply.status == 404, reply.body
    assert reply.json()["error"]["status"] == "NOT_FOUND"
    assert fake_gemini.seen == []
