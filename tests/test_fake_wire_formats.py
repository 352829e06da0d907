"""The fakes for the OpenAI Responses and Gemini APIs, read by the official SDKs: if the SDKs
parse them, the gateway's routes can be tested against them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.fixtures import agent_clis as cli
from tests.fixtures.fake_gemini import FakeGemini, example_of
from tests.fixtures.fake_messages import FakeMessages
from tests.fixtures.fake_responses import FakeResponses
from tests.fixtures.wire_record import SECRET_HEADERS


@pytest.fixture
async def fake_responses() -> AsyncIterator[FakeResponses]:
    fake = await FakeResponses().start()
    yield fake
    await fake.close()


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


def _client(fake: FakeResponses) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", base_url=f"{fake.base}/v1", max_retries=0)


# -- OpenAI Responses ------------------------------------------------------------------------


async def test_responses_plain_text_and_usage(fake_responses: FakeResponses) -> None:
    fake_responses.behaviour.reply = "Plain answer."
    async with _client(fake_responses) as client:
        response = await client.responses.create(model="gpt-fake", input="Say something")
    assert response.output_text == "Plain answer."
    assert response.status == "completed"
    assert response.model == "gpt-fake"
    assert response.usage is not None
    assert response.usage.input_tokens == 21
    assert response.usage.output_tokens == 9
    assert response.usage.total_tokens == 30
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    seen = fake_responses.requests[0]
    assert seen.body["input"] == "Say something"
    assert seen.headers["Authorization"] == "Bearer sk-test"


async def test_responses_plain_tool_call_then_text(fake_responses: FakeResponses) -> None:
    fake_responses.script_tool_call("exec_command", {"cmd": "echo hi"}, call_id="call_1")
    async with _client(fake_responses) as client:
        first = await client.responses.create(model="gpt-fake", input="Run echo hi")
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1
        assert calls[0].name == "exec_command"
        assert json.loads(calls[0].arguments) == {"cmd": "echo hi"}
        assert calls[0].call_id == "call_1"
        follow: Any = [
            {"type": "message", "role": "user", "content": "Run echo hi"},
            calls[0].model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": "call_1", "output": "hi"},
        ]
        second = await client.responses.create(model="gpt-fake", input=follow)
    assert second.output_text == fake_responses.behaviour.reply
    assert fake_responses.requests[1].body["input"][-1]["output"] == "hi"


async def test_responses_stream_event_sequence(fake_responses: FakeResponses) -> None:
    fake_responses.behaviour.reply = "Streamed answer, in pieces."
    async with _client(fake_responses) as client:
        stream = await client.responses.create(model="gpt-fake", input="Hi", stream=True)
        events = [event async for event in stream]
    names = [e.type for e in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Streamed answer, in pieces."
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == "Streamed answer, in pieces."
    assert done.response.usage is not None and done.response.usage.output_tokens == 9


async def test_responses_stream_tool_call_with_helper(fake_responses: FakeResponses) -> None:
    fake_responses.script_tool_call("read_file", {"path": "notes.txt"}, text="Reading it.")
    async with (
        _client(fake_responses) as client,
        client.responses.stream(model="gpt-fake", input="What does notes.txt say?") as stream,
    ):
        names = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in names
    assert "response.function_call_arguments.done" in names
    assert names[-1] == "response.completed"
    assert final.output_text == "Reading it."
    call = final.output[-1]
    assert call.type == "function_call"
    assert call.name == "read_file" and json.loads(call.arguments) == {"path": "notes.txt"}


async def test_responses_reasoning_item_first(fake_responses: FakeResponses) -> None:
    fake_responses.behaviour.reasoning = "Thinking about it."
    fake_responses.script_tool_call("exec_command", {"cmd": "ls"})
    async with (
        _client(fake_responses) as client,
        client.responses.stream(
            model="gpt-fake", input="List files", include=["reasoning.encrypted_content"]
        ) as stream,
    ):
        names = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "function_call"]
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Thinking about it."
    assert reasoning.encrypted_content
    assert "response.reasoning_summary_text.delta" in names


async def test_responses_stream_failure(fake_responses: FakeResponses) -> None:
    fake_responses.script_failure("context_length_exceeded", "Your input exceeds the window.")
    async with _client(fake_responses) as client:
        stream = await client.responses.create(model="gpt-fake", input="Hi", stream=True)
        names = [event.type async for event in stream]
    assert names == ["response.created", "response.in_progress", "response.failed"]


async def test_responses_retrieve_input_items_delete(fake_responses: FakeResponses) -> None:
    async with _client(fake_responses) as client:
        created = await client.responses.create(model="gpt-fake", input="Keep this")
        again = await client.responses.retrieve(created.id)
        assert again.id == created.id and again.output_text == created.output_text
        items = await client.responses.input_items.list(created.id)
        assert [item.type for item in items.data] == ["message"]
        await client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(created.id)
    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake_responses.seen]
    assert methods[1:] == [
        ("GET", created.id),
        ("GET", "input_items"),
        ("DELETE", created.id),
        ("GET", created.id),
    ]


async def test_responses_unknown_path_is_recorded(fake_responses: FakeResponses) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake_responses.base}/v1/nothing", json={}) as response,
    ):
        assert response.status == 404
        assert (await response.json())["error"]["type"] == "invalid_request_error"
    assert fake_responses.seen[-1].path == "/v1/nothing"


# -- Gemini ----------------------------------------------------------------------------------

try:
    from google import genai  # type: ignore[import-not-found, unused-ignore]
    from google.genai import types  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # google-genai is not in the lock yet
    genai = None

needs_genai = pytest.mark.skipif(genai is None, reason="google-genai is not installed")


def _gemini(fake: FakeGemini) -> Any:
    options = types.HttpOptions(base_url=fake.base, api_version="v1beta")
    return genai.Client(api_key="gm-test", http_options=options)


@needs_genai
async def test_gemini_generate_content_text_and_usage(fake_gemini: FakeGemini) -> None:
    fake_gemini.behaviour.reply = "Gemini says hi."
    response = await _gemini(fake_gemini).aio.models.generate_content(
        model="gemini-2.5-flash", contents="Hello"
    )
    assert response.text == "Gemini says hi."
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage.prompt_token_count == 24
    assert usage.candidates_token_count == 8
    assert usage.cached_content_token_count == 4
    assert usage.thoughts_token_count == 5
    assert usage.total_token_count == 37
    assert response.model_version == "gemini-2.5-flash"
    assert response.response_id
    seen = fake_gemini.generations[0]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == "gm-test"
    assert seen.body["contents"][0]["parts"][0]["text"] == "Hello"


@needs_genai
async def test_gemini_function_call_then_text(fake_gemini: FakeGemini) -> None:
    fake_gemini.script_tool_call("run_shell_command", {"command": "echo hi"})
    client = _gemini(fake_gemini)
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="run_shell_command",
                description="Run a shell command",
                parameters_json_schema={
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                },
            )
        ]
    )
    config = types.GenerateContentConfig(
        tools=[tool],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    first = await client.aio.models.generate_content(
        model="gemini-2.5-pro", contents="Run echo hi", config=config
    )
    assert first.function_calls is not None
    assert first.function_calls[0].name == "run_shell_command"
    assert first.function_calls[0].args == {"command": "echo hi"}
    contents = [
        types.Content(role="user", parts=[types.Part(text="Run echo hi")]),
        first.candidates[0].content,
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(
                    name="run_shell_command", response={"output": "hi"}
                )
            ],
        ),
    ]
    second = await client.aio.models.generate_content(
        model="gemini-2.5-pro", contents=contents, config=config
    )
    assert second.text == fake_gemini.behaviour.reply
    sent = fake_gemini.generations[1].body["contents"]
    assert sent[1]["parts"][0]["functionCall"]["name"] == "run_shell_command"
    assert sent[2]["parts"][0]["functionResponse"]["response"] == {"output": "hi"}


@needs_genai
async def test_gemini_stream_chunks_usage_on_last(fake_gemini: FakeGemini) -> None:
    fake_gemini.behaviour.reply = "A streamed Gemini answer."
    stream = await _gemini(fake_gemini).aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Hello"
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 3
    assert "".join(c.text or "" for c in chunks) == "A streamed Gemini answer."
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[0].candidates[0].finish_reason is None
    assert chunks[-1].usage_metadata.candidates_token_count == 8
    seen = fake_gemini.generations[0]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert seen.query == "alt=sse"


@needs_genai
async def test_gemini_stream_function_call(fake_gemini: FakeGemini) -> None:
    fake_gemini.script_tool_call("read_file", {"file_path": "notes.txt"}, text="Reading.")
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="read_file")])]
    )
    stream = await _gemini(fake_gemini).aio.models.generate_content_stream(
        model="gemini-2.5-pro", contents="Read notes.txt", config=config
    )
    chunks = [chunk async for chunk in stream]
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("read_file", {"file_path": "notes.txt"})]
    assert chunks[0].text == "Reading."


@needs_genai
async def test_gemini_count_tokens_and_models(fake_gemini: FakeGemini) -> None:
    client = _gemini(fake_gemini)
    counted = await client.aio.models.count_tokens(model="gemini-2.5-pro", contents="Hello")
    assert counted.total_tokens == 17
    model = await client.aio.models.get(model="gemini-2.5-pro")
    assert model.name == "models/gemini-2.5-pro"
    assert model.input_token_limit == 1048576
    names = [m.name async for m in await client.aio.models.list()]
    assert "models/gemini-2.5-flash" in names


async def test_gemini_key_in_query_and_missing_key(fake_gemini: FakeGemini) -> None:
    url = f"{fake_gemini.base}/v1beta/models/gemini-2.5-pro:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, params={"key": "from-query"}, json=body) as ok:
            assert ok.status == 200
        async with http.post(url, json=body) as denied:
            assert denied.status == 403
            assert (await denied.json())["error"]["status"] == "PERMISSION_DENIED"
    assert fake_gemini.keys_used == ["from-query", None]


@needs_genai
async def test_gemini_schema_requests_get_fitting_json(fake_gemini: FakeGemini) -> None:
    fake_gemini.script_tool_call("read_file", {"file_path": "x"})
    schema = {
        "type": "OBJECT",
        "properties": {
            "complexity_reasoning": {"type": "STRING"},
            "complexity_score": {"type": "INTEGER"},
        },
    }
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=schema
    )
    response = await _gemini(fake_gemini).aio.models.generate_content(
        model="gemini-2.5-flash-lite", contents="Route this", config=config
    )
    assert json.loads(response.text or "") == example_of(schema)
    assert len(fake_gemini.script) == 1  # the scripted call is kept for the tool-using request


# -- Anthropic tool_use fake -----------------------------------------------------------------


async def test_messages_fake_streams_tool_use(fake_messages: FakeMessages) -> None:
    import anthropic

    fake_messages.script_tool_use("Bash", {"command": "echo hi"}, text="Running it.")
    tools: Any = [{"name": "Bash", "input_schema": {"type": "object"}}]
    async with anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake_messages.base) as c:
        async with c.messages.stream(
            model="claude-fake",
            max_tokens=100,
            tools=tools,
            messages=[{"role": "user", "content": "Run echo hi"}],
        ) as stream:
            message = await stream.get_final_message()
        assert message.stop_reason == "tool_use"
        assert [b.type for b in message.content] == ["text", "tool_use"]
        block = message.content[1]
        assert block.type == "tool_use" and block.input == {"command": "echo hi"}
        title = await c.messages.create(
            model="claude-fake", max_tokens=10, messages=[{"role": "user", "content": "Title?"}]
        )
    assert title.content[0].type == "text"


# -- The real CLIs against the fakes, offline ------------------------------------------------


def _no_tool(binary: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not binary.exists(), reason=f"{binary.name} not installed (scripts/ensure-agent-clis)"
    )


@_no_tool(cli.CODEX)
def test_codex_cli_runs_a_tool_loop_on_the_fake() -> None:
    fake = FakeResponses()
    fake.script_tool_call("exec_command", {"cmd": "echo hi"}, text="I'll run it.")
    fake.behaviour.reply = "It printed: hi"
    with cli.RefusingProxy() as proxy, cli.sandbox() as (home, project, _), cli.threaded(fake):
        result = cli.run(
            cli.codex_argv("Run echo hi"), cli.codex_env(home, proxy, fake.base), project
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "It printed: hi" in result.stdout
    assert proxy.tried == []
    first, second = fake.requests
    assert first.headers["session-id"] == second.headers["session-id"]
    assert first.body["stream"] is True and first.body["store"] is False
    output = second.body["input"][-1]
    assert output["type"] == "function_call_output" and "hi" in output["output"]


@_no_tool(cli.GEMINI)
def test_gemini_cli_runs_a_tool_loop_on_the_fake() -> None:
    fake = FakeGemini()
    fake.script_tool_call("run_shell_command", {"command": "echo hi"})
    fake.behaviour.reply = "It printed: hi"
    with cli.RefusingProxy() as proxy, cli.sandbox() as (home, project, _), cli.threaded(fake):
        env = cli.gemini_env(home, proxy, fake.base)
        result = cli.run(cli.gemini_argv("Run echo hi"), env, project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "It printed: hi" in result.stdout
    assert proxy.tried == []
    router, *turns = fake.generations
    assert router.path.endswith(":generateContent")
    assert [t.query for t in turns] == ["alt=sse", "alt=sse"]
    last = turns[-1].body["contents"][-1]["parts"][0]["functionResponse"]
    assert last["name"] == "run_shell_command" and "hi" in json.dumps(last["response"])
    assert set(fake.keys_used) == {"fake-gemini-key"}


@_no_tool(cli.CLAUDE)
def test_claude_code_runs_a_subagent_on_the_fake() -> None:
    fake = FakeMessages()
    fake.script_subagent()
    with cli.RefusingProxy() as proxy, cli.sandbox() as (home, project, _), cli.threaded(fake):
        env = cli.claude_env(home, proxy, fake.base)
        result = cli.run(cli.claude_argv("Use a subagent to read notes.txt"), env, project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "blue-cluster" in result.stdout
    assert proxy.tried == []
    agents = [s.headers.get("x-claude-code-agent-id") for s in fake.seen]
    assert agents[0] is None and agents[-1] is None
    assert any(agents), "the subagent's requests carry x-claude-code-agent-id"


# -- The recorded sessions -------------------------------------------------------------------

RECORDED = sorted((Path(__file__).parent / "fixtures/clients").glob("*/*.json"))


def test_recorded_sessions_are_whole_and_masked() -> None:
    assert {p.parent.name for p in RECORDED} >= {
        f"codex-{cli.CODEX_VERSION}",
        f"gemini-cli-{cli.GEMINI_VERSION}",
        f"claude-code-{cli.CLAUDE_VERSION}",
    }
    for path in RECORDED:
        text = path.read_text(encoding="utf-8")
        assert len(text) < 5_000_000, path
        assert str(cli.ROOT) not in text and "/tmp/rec-" not in text, path
        session = json.loads(text)
        assert session, path
        for request in session:
            assert set(request) == {"method", "path", "query", "headers", "body"}
            for name, value in request["headers"].items():
                if name in SECRET_HEADERS:
                    assert value.endswith(f"<{name}>"), (path, name)
            assert "key=" not in request["query"] or "key=<key>" in request["query"]
            assert isinstance(request["body"], dict), path


async def test_recorded_codex_requests_replay_on_the_fake(fake_responses: FakeResponses) -> None:
    requests = [
        r
        for p in RECORDED
        if p.parent.name.startswith("codex-")
        for r in json.loads(p.read_text(encoding="utf-8"))
    ]
    assert requests
    async with aiohttp.ClientSession() as http:
        for request in requests:
            url = f"{fake_responses.base}{request['path']}"
            async with http.post(url, json=request["body"]) as response:
                assert response.status == 200
                body = await response.text()
            assert body.rstrip().splitlines()[-1].startswith('data: {"type": "response.completed"')


async def test_recorded_gemini_requests_replay_on_the_fake(fake_gemini: FakeGemini) -> None:
    requests = [
        r
        for p in RECORDED
        if p.parent.name.startswith("gemini-cli-")
        for r in json.loads(p.read_text(encoding="utf-8"))
    ]
    assert requests
    async with aiohttp.ClientSession(headers={"x-goog-api-key": "k"}) as http:
        for request in requests:
            url = f"{fake_gemini.base}{request['path']}?{request['query']}"
            async with http.post(url, json=request["body"]) as response:
                assert response.status == 200
                await response.read()
    assert len(fake_gemini.generations) == len(requests)
