"""The OpenAI Responses API through the real gateway, driven by the official openai SDK: relayed
byte for byte to an OpenAI-compatible fake, stored responses passed through, memory, echo, and
translated for an Anthropic model (tools both ways) from an allowlist of fields."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from memproxy_cli.api.openai_responses import RESPONSES_FIELDS
from tests.fixtures.fake_gemini import FakeGemini
from tests.fixtures.fake_messages import FakeMessages
from tests.fixtures.fake_responses import FakeResponses
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import rows_when
from tests.test_fuzz import FUZZ, ThreadedGateway, _check, json_values

CALLER_KEY = "sk-caller-responses-0001"
CONFIGURED_ANTHROPIC_KEY = "sk-ant-configured-responses-7777"
FACT = "Our billing service keeps invoices in a bucket named amber-ledger-42."
EXEC_TOOL: Any = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeResponses]:
    provider = await FakeResponses().start()
    yield provider
    await provider.close()


@pytest.fixture
async def claude() -> AsyncIterator[FakeMessages]:
    provider = await FakeMessages().start()
    yield provider
    await provider.close()


@pytest.fixture
async def gw(fake: FakeResponses) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for(fake.base), litellm=False) as gateway:
        yield gateway


@pytest.fixture
async def memory_gw(fake: FakeResponses) -> AsyncIterator[RunningGateway]:
    config = config_for(fake.base, memory={"backend": "local"})
    async with running_gateway(config, litellm=False) as gateway:
        yield gateway


def _claude_config(fake: FakeResponses, claude: FakeMessages) -> Any:
    return config_for(
        fake.base,
        model_list=[
            {
                "model_name": "claude-test",
                "litellm_params": {
                    "model": "anthropic/claude-test-1",
                    "api_base": claude.base,
                    "api_key": CONFIGURED_ANTHROPIC_KEY,
                },
            }
        ],
    )


@pytest.fixture
async def translating_gw(
    fake: FakeResponses, claude: FakeMessages
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(_claude_config(fake, claude)) as gateway:
        yield gateway


def client(gw: RunningGateway, project: str | None = None) -> openai.AsyncOpenAI:
    headers = {"x-memproxy-project": project} if project else None
    return openai.AsyncOpenAI(
        base_url=gw.url + "/v1", api_key=CALLER_KEY, max_retries=0, default_headers=headers
    )


# -- passthrough ---------------------------------------------------------------------------------


async def test_plain_answer_usage_and_row(gw: RunningGateway, fake: FakeResponses) -> None:
    fake.behaviour.reply = "Plain answer through memproxy."
    async with client(gw) as oai:
        response = await oai.responses.create(
            model="gpt-4o", input="Say something", instructions="Be terse."
        )
    assert response.output_text == "Plain answer through memproxy."
    assert response.usage is not None and response.usage.input_tokens == 21
    [seen] = fake.requests
    assert seen.body == {"model": "gpt-4o", "input": "Say something", "instructions": "Be terse."}
    assert seen.headers["Authorization"] == f"Bearer {CALLER_KEY}"
    [row] = await rows_when(1)
    assert row["endpoint"] == "/v1/responses" and row["status"] == "ok"
    assert row["provider"] == "openai" and row["model"] == "gpt-4o"
    assert (row["prompt_tokens"], row["completion_tokens"], row["cache_read_tokens"]) == (21, 9, 3)


async def test_path_without_v1_prefix(gw: RunningGateway, fake: FakeResponses) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + "/responses", json={"model": "gpt-4o", "input": "hi"}) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["output"][0]["content"][0]["text"] == fake.behaviour.reply
    assert [r.path for r in fake.requests] == ["/v1/responses"]


@pytest.mark.parametrize("tool_call", [False, True])
async def test_stream_relays_every_event_byte_for_byte(
    gw: RunningGateway, fake: FakeResponses, tool_call: bool
) -> None:
    if tool_call:
        fake.script_tool_call("exec_command", {"cmd": "ls"}, call_id="call_7", text="Looking.")
    body = {"model": "gpt-4o", "input": "List the files", "stream": True, "tools": [EXEC_TOOL]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + "/v1/responses", json=body) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        got = await resp.read()
    [sent] = fake.sent
    assert got == sent
    [row] = await rows_when(1)
    assert row["stream"] and row["status"] == "ok"
    assert (row["prompt_tokens"], row["completion_tokens"], row["cache_read_tokens"]) == (21, 9, 3)


async def test_stream_with_the_sdk(gw: RunningGateway, fake: FakeResponses) -> None:
    fake.behaviour.reply = "Streamed through memproxy, in pieces."
    async with client(gw) as oai:
        stream = await oai.responses.create(model="gpt-4o", input="Hi", stream=True)
        events = [event async for event in stream]
    names = [e.type for e in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Streamed through memproxy, in pieces."


async def test_tool_call_round_trip(gw: RunningGateway, fake: FakeResponses) -> None:
    fake.script_tool_call("exec_command", {"cmd": "echo hi"}, call_id="call_1")
    fake.behaviour.reply = "It printed hi."
    async with client(gw) as oai:
        first = await oai.responses.create(model="gpt-4o", input="Run echo hi", tools=[EXEC_TOOL])
        [call] = [item for item in first.output if item.type == "function_call"]
        assert call.name == "exec_command" and json.loads(call.arguments) == {"cmd": "echo hi"}
        follow: Any = [
            {"type": "message", "role": "user", "content": "Run echo hi"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "hi\n"},
        ]
        second = await oai.responses.create(model="gpt-4o", input=follow, tools=[EXEC_TOOL])
    assert second.output_text == "It printed hi."
    assert fake.requests[1].body["input"] == follow


async def test_failed_stream_reaches_the_client_and_the_row(
    gw: RunningGateway, fake: FakeResponses
) -> None:
    fake.script_failure("server_error", "The model fell over.")
    async with client(gw) as oai:
        stream = await oai.responses.create(model="gpt-4o", input="Hi", stream=True)
        events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    [row] = await rows_when(1)
    assert row["status"] == "error" and row["error"] == "The model fell over."


async def test_errors_in_openai_shape(gw: RunningGateway, fake: FakeResponses) -> None:
    async with client(gw) as oai:
        with pytest.raises(openai.BadRequestError) as bad:
            await oai.responses.create(model="gpt-4o", input=5)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError) as unknown:
            await oai.responses.create(model="no-such-model", input="hi")
    assert bad.value.body == {
        "message": "`input` must be a string or an array of input items",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert isinstance(unknown.value.body, dict)
    assert unknown.value.body["code"] == "model_not_found"
    assert fake.requests == []


# -- stored responses ----------------------------------------------------------------------------


async def test_retrieve_input_items_delete_pass_through(
    gw: RunningGateway, fake: FakeResponses
) -> None:
    async with client(gw, "shop") as oai:
        created = await oai.responses.create(model="gpt-4o", input="Keep this")
        again = await oai.responses.retrieve(created.id)
        items = await oai.responses.input_items.list(created.id, order="asc", limit=5)
        deleted = await oai.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError) as gone:
            await oai.responses.retrieve(created.id)
    assert again.id == created.id and again.output_text == created.output_text
    assert [item.type for item in items.data] == ["message"]
    assert deleted is None
    assert isinstance(gone.value.body, dict) and created.id in gone.value.body["message"]
    later = [(r.method, r.path, r.query) for r in fake.seen[1:]]
    assert later == [
        ("GET", f"/v1/responses/{created.id}", ""),
        ("GET", f"/v1/responses/{created.id}/input_items", "limit=5&order=asc"),
        ("DELETE", f"/v1/responses/{created.id}", ""),
        ("GET", f"/v1/responses/{created.id}", ""),
    ]
    assert all(r.headers["Authorization"] == f"Bearer {CALLER_KEY}" for r in fake.seen)
    rows = await rows_when(5)
    assert [r["endpoint"] for r in rows[1:]] == [
        f"/v1/responses/{created.id}",
        f"/v1/responses/{created.id}/input_items",
        f"/v1/responses/{created.id}",
        f"/v1/responses/{created.id}",
    ]
    assert [r["http_status"] for r in rows[1:]] == [200, 200, 200, 404]
    assert all(r["project"] == "shop" and r["provider"] == "openai" for r in rows)
    assert all(r["prompt_tokens"] is None for r in rows[1:])  # counted once, when created
    assert all(r["request_id"].startswith("req_") for r in rows)


async def test_cancel_is_relayed_and_other_methods_are_not_found(
    gw: RunningGateway, fake: FakeResponses
) -> None:
    async with client(gw) as oai:
        with pytest.raises(openai.NotFoundError) as missing:  # the fake serves no cancel
            await oai.responses.cancel("resp_9", extra_query={"x": "1"})
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["message"] == "Unknown path /v1/responses/resp_9/cancel"
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{gw.url}/v1/responses/resp_9", json={}) as resp:
            assert resp.status == 404
            body = await resp.json()
            assert body["error"]["code"] == "not_found"
    assert [(r.method, r.path, r.query) for r in fake.seen] == [
        ("POST", "/v1/responses/resp_9/cancel", "x=1")
    ]
    rows = await rows_when(2)
    assert sorted(r["status"] for r in rows) == ["error", "not_found"]


CODEX_RECORDINGS = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((Path(__file__).parent / "fixtures/clients").glob("codex-*/*.json"))
}


@pytest.mark.parametrize("session", sorted(CODEX_RECORDINGS))
async def test_recorded_codex_requests_reach_the_upstream_unchanged(
    gw: RunningGateway, fake: FakeResponses, session: str
) -> None:
    requests = CODEX_RECORDINGS[session]
    skip = {"host", "content-length", "authorization", "accept-encoding"}
    async with aiohttp.ClientSession() as http:
        for request in requests:
            headers = {k: v for k, v in request["headers"].items() if k not in skip}
            headers["authorization"] = f"Bearer {CALLER_KEY}"
            raw = json.dumps(request["body"]).encode()
            async with http.post(gw.url + request["path"], data=raw, headers=headers) as resp:
                assert resp.status == 200
                await resp.read()
            seen = fake.requests[-1]
            assert seen.raw == raw
            for name in ("session-id", "thread-id", "x-codex-turn-metadata", "user-agent"):
                assert seen.headers[name] == request["headers"][name]
    assert len(fake.requests) == len(requests)


async def test_stored_response_without_v1_prefix(gw: RunningGateway, fake: FakeResponses) -> None:
    async with client(gw) as oai:
        created = await oai.responses.create(model="gpt-4o", input="Keep this")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gw.url}/responses/{created.id}") as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["id"] == created.id
        assert resp.headers["x-memproxy-request-id"].startswith("req_")


async def test_edge_forwards_responses_and_stored_ones(fake: FakeResponses) -> None:
    central_config = config_for(fake.base)
    async with running_gateway(central_config, litellm=False) as central:
        edge_config = config_for("http://127.0.0.1:9", gateway_url=central.url)
        async with running_gateway(edge_config, litellm=False, store=False) as edge:
            edge.state.port_projects[edge.server.port] = "alpha"  # a project listener
            async with client(edge) as oai:
                created = await oai.responses.create(model="gpt-4o", input="Keep this")
                again = await oai.responses.retrieve(created.id)
                await oai.responses.delete(created.id)
    assert again.id == created.id and again.output_text == fake.behaviour.reply
    assert [(r.method, r.path) for r in fake.seen] == [
        ("POST", "/v1/responses"),
        ("GET", f"/v1/responses/{created.id}"),
        ("DELETE", f"/v1/responses/{created.id}"),
    ]
    assert all(r.headers["Authorization"] == f"Bearer {CALLER_KEY}" for r in fake.seen)
    rows = await rows_when(3)  # the central gateway's rows
    assert [r["project"] for r in rows] == ["alpha", "alpha", "alpha"]


# -- memory --------------------------------------------------------------------------------------


async def _tell(gw: RunningGateway, project: str, fake: FakeResponses, stream: bool) -> None:
    fake.behaviour.reply = "Noted: invoices live in amber-ledger-42."
    async with client(gw, project) as oai:
        if stream:
            events = await oai.responses.create(model="gpt-4o", input=FACT, stream=True)
            [e async for e in events]
        else:
            await oai.responses.create(model="gpt-4o", input=FACT)
    assert gw.memory is not None
    await gw.memory.drain(10)


@pytest.mark.parametrize("stream", [False, True])
async def test_final_text_is_stored_as_memory(
    memory_gw: RunningGateway, fake: FakeResponses, stream: bool
) -> None:
    await _tell(memory_gw, "billing", fake, stream)
    assert memory_gw.memory is not None
    backend = memory_gw.memory.backend_for(memory_gw.state.config.memory)
    assert backend is not None
    [stored] = await backend.list("billing")
    assert "amber-ledger-42" in stored.text
    assert "Noted: invoices live in amber-ledger-42." in stored.text


async def test_recall_goes_into_the_last_user_input_item(
    memory_gw: RunningGateway, fake: FakeResponses
) -> None:
    await _tell(memory_gw, "billing", fake, stream=False)
    history: Any = [
        {"type": "message", "role": "developer", "content": "You are a coding agent."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hey"}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Where do the invoices of billing live?"}],
        },
    ]
    async with client(memory_gw, "billing") as oai:
        raw = await oai.responses.with_raw_response.create(model="gpt-4o", input=history)
    assert raw.headers["x-memproxy-memories"] == "1"
    sent = fake.requests[-1].body["input"]
    assert sent[:3] == history[:3]
    last = sent[-1]["content"]
    assert last[0] == history[-1]["content"][0]
    assert last[1]["type"] == "input_text"
    assert "<memproxy-memories>" in last[1]["text"] and "amber-ledger-42" in last[1]["text"]


async def test_recall_into_a_string_input(memory_gw: RunningGateway, fake: FakeResponses) -> None:
    await _tell(memory_gw, "billing", fake, stream=False)
    question = "Where do the invoices of billing live?"
    async with client(memory_gw, "billing") as oai:
        await oai.responses.create(model="gpt-4o", input=question)
    [item] = fake.requests[-1].body["input"]
    assert item["type"] == "message" and item["role"] == "user"
    assert item["content"][0] == {"type": "input_text", "text": question}
    assert "amber-ledger-42" in item["content"][1]["text"]


async def test_tool_output_turn_gets_no_recall_and_is_not_the_user(
    memory_gw: RunningGateway, fake: FakeResponses
) -> None:
    await _tell(memory_gw, "billing", fake, stream=False)
    follow: Any = [
        {"type": "message", "role": "user", "content": "Where do the invoices of billing live?"},
        {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "billing invoices"},
    ]
    async with client(memory_gw, "billing") as oai:
        raw = await oai.responses.with_raw_response.create(model="gpt-4o", input=follow)
    assert raw.headers["x-memproxy-memories"] == "0"
    assert fake.requests[-1].body["input"] == follow


async def test_compaction_request_gets_no_recall_and_is_not_stored(
    memory_gw: RunningGateway, fake: FakeResponses
) -> None:
    await _tell(memory_gw, "billing", fake, stream=False)
    compact: Any = [
        {"type": "message", "role": "user", "content": "Where do the invoices of billing live?"},
        {"type": "message", "role": "assistant", "content": "In amber-ledger-42."},
        {"type": "message", "role": "user", "content": "And where do the billing invoices go?"},
        {"type": "compaction_trigger"},
    ]
    fake.behaviour.reply = "A summary of the conversation so far."
    async with client(memory_gw, "billing") as oai:
        raw = await oai.responses.with_raw_response.create(model="gpt-4o", input=compact)
    assert raw.headers["x-memproxy-memories"] == "0"
    assert fake.requests[-1].body["input"] == compact
    assert memory_gw.memory is not None
    await memory_gw.memory.drain(10)
    backend = memory_gw.memory.backend_for(memory_gw.state.config.memory)
    assert backend is not None
    assert len(await backend.list("billing")) == 1  # only the turn that told the fact


async def test_system_strategy_appends_to_instructions(fake: FakeResponses) -> None:
    config = config_for(fake.base, memory={"backend": "local", "injection_strategy": "system"})
    async with running_gateway(config, litellm=False) as gateway:
        await _tell(gateway, "billing", fake, stream=False)
        async with client(gateway, "billing") as oai:
            await oai.responses.create(
                model="gpt-4o",
                instructions="Be terse.",
                input="Where do the invoices of billing live?",
            )
    sent = fake.requests[-1].body
    assert sent["input"] == "Where do the invoices of billing live?"
    assert sent["instructions"].startswith("Be terse.\n\n<memproxy-memories>")
    assert "amber-ledger-42" in sent["instructions"]


# -- echo ----------------------------------------------------------------------------------------


async def test_echo_plain_and_streamed(gw: RunningGateway) -> None:
    async with client(gw) as oai:
        plain = await oai.responses.create(
            model="memproxy/echo", input="Echo me", instructions="Be terse."
        )
        stream = await oai.responses.create(model="memproxy/echo", input="Echo me", stream=True)
        events = [event async for event in stream]
    assert json.loads(plain.output_text) == {"instructions": "Be terse.", "input": "Echo me"}
    assert plain.usage is not None and plain.usage.output_tokens > 0
    names = [e.type for e in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed"
    assert json.loads(done.response.output_text) == {"input": "Echo me"}


# -- translation to an Anthropic model -----------------------------------------------------------


async def test_translated_plain_answer(
    translating_gw: RunningGateway, claude: FakeMessages
) -> None:
    claude.reply = "Claude answers through the Responses API."
    async with client(translating_gw) as oai:
        response = await oai.responses.create(
            model="claude-test", input="Hello", instructions="Be terse.", max_output_tokens=64
        )
    assert response.output_text == "Claude answers through the Responses API."
    assert response.model == "claude-test"
    [seen] = claude.seen
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == CONFIGURED_ANTHROPIC_KEY
    assert seen.body["system"] == [{"type": "text", "text": "Be terse."}]
    assert seen.body["max_tokens"] == 64
    [row] = await rows_when(1)
    assert row["provider"] == "litellm:anthropic" and row["status"] == "ok"
    assert row["completion_tokens"] == 9 and row["cache_read_tokens"] == 5
    assert row["cache_write_tokens"] == 2


async def test_translated_stream_is_a_real_responses_stream(
    translating_gw: RunningGateway, claude: FakeMessages
) -> None:
    claude.reply = "Streamed from Claude."
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            translating_gw.url + "/v1/responses",
            json={"model": "claude-test", "input": "Hello", "stream": True},
        ) as resp,
    ):
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        raw = (await resp.read()).decode()
    frames = [f for f in raw.split("\n\n") if f]
    for n, frame in enumerate(frames):
        head, data = frame.split("\n", 1)
        event = json.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        assert event["sequence_number"] == n
    async with client(translating_gw) as oai:
        stream = await oai.responses.create(model="claude-test", input="Hello", stream=True)
        events = [event async for event in stream]
    names = [e.type for e in events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == "Streamed from Claude."
    assert done.response.model == "claude-test"
    rows = await rows_when(2)
    assert all(r["status"] == "ok" and r["completion_tokens"] == 9 for r in rows)


@pytest.mark.parametrize("stream", [False, True])
async def test_translated_tool_calls_both_ways(
    translating_gw: RunningGateway, claude: FakeMessages, stream: bool
) -> None:
    claude.script_tool_use("exec_command", {"cmd": "echo hi"}, text="Running it.")
    claude.script_text("It printed hi.")
    async with client(translating_gw) as oai:
        if stream:
            async with oai.responses.stream(
                model="claude-test", input="Run echo hi", tools=[EXEC_TOOL]
            ) as events:
                first = await events.get_final_response()
        else:
            first = await oai.responses.create(
                model="claude-test", input="Run echo hi", tools=[EXEC_TOOL]
            )
        [call] = [item for item in first.output if item.type == "function_call"]
        assert call.name == "exec_command" and json.loads(call.arguments) == {"cmd": "echo hi"}
        follow: Any = [
            {"type": "message", "role": "user", "content": "Run echo hi"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "hi\n"},
        ]
        second = await oai.responses.create(model="claude-test", input=follow, tools=[EXEC_TOOL])
    assert second.output_text == "It printed hi."
    offered = claude.seen[0].body["tools"]
    assert [t["name"] for t in offered] == ["exec_command"]
    messages = claude.seen[1].body["messages"]
    assert messages[1]["content"][-1]["type"] == "tool_use"
    assert messages[1]["content"][-1]["input"] == {"cmd": "echo hi"}
    result = messages[2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call.call_id
    assert "hi" in json.dumps(result["content"])


async def test_translated_previous_response_id_is_refused(
    translating_gw: RunningGateway, claude: FakeMessages
) -> None:
    async with client(translating_gw) as oai:
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.responses.create(
                model="claude-test", input="And then?", previous_response_id="resp_1"
            )
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "previous_response_not_supported"
    assert claude.seen == []


async def test_translated_failure_mid_stream_is_response_failed(
    translating_gw: RunningGateway, claude: FakeMessages, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert translating_gw.litellm is not None
    litellm = await translating_gw.litellm.module()
    real = litellm.aresponses

    async def breaking(**kwargs: Any) -> Any:
        stream = await real(**kwargs)

        async def events() -> AsyncIterator[Any]:
            yield await anext(aiter(stream))
            raise litellm.RateLimitError(
                "Rate limit reached, try again in 2s", llm_provider="anthropic", model="x"
            )

        return events()

    monkeypatch.setattr(litellm, "aresponses", breaking)
    async with client(translating_gw) as oai:
        stream = await oai.responses.create(model="claude-test", input="Hello", stream=True)
        events = [event async for event in stream]
    assert [e.type for e in events] == ["response.created", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    assert failed.response.error.code == "rate_limit_exceeded"
    assert "Traceback" not in failed.response.error.message
    assert "RateLimitError" not in failed.response.error.message
    [row] = await rows_when(1)
    assert row["status"] == "rate_limited"


async def test_translated_to_a_gemini_model(fake: FakeResponses) -> None:
    gemini = await FakeGemini().start()
    config = config_for(
        fake.base,
        model_list=[
            {
                "model_name": "gem",
                "litellm_params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_base": gemini.base + "/v1beta",
                    "api_key": "gm-configured-0001",
                },
            }
        ],
    )
    try:
        async with running_gateway(config) as gateway, client(gateway) as oai:
            plain = await oai.responses.create(model="gem", input="Hello")
            stream = await oai.responses.create(model="gem", input="Hello", stream=True)
            events = [event async for event in stream]
            gemini.script_tool_call("exec_command", {"cmd": "ls"})
            called = await oai.responses.create(model="gem", input="Run ls", tools=[EXEC_TOOL])
    finally:
        await gemini.close()
    assert plain.output_text == gemini.behaviour.reply
    done = events[-1]
    assert done.type == "response.completed" and done.response.output_text == plain.output_text
    [call] = [item for item in called.output if item.type == "function_call"]
    assert call.name == "exec_command" and json.loads(call.arguments) == {"cmd": "ls"}
    assert [s.path.rsplit(":", 1)[-1] for s in gemini.seen] == [
        "generateContent",
        "streamGenerateContent",
        "generateContent",
    ]
    assert all(s.headers["x-goog-api-key"] == "gm-configured-0001" for s in gemini.seen)
    assert fake.requests == []


# -- a translated call is built from an allowlist ------------------------------------------------


@pytest.fixture
async def attacker() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    yield provider
    await provider.close()


def _hostile(attacker: FakeProvider) -> dict[str, Any]:
    """Everything LiteLLM reads as configuration, pointing at the attacker."""
    return {
        "timeout": 0.0001,
        "fallbacks": [{"model": "openai/x", "api_base": attacker.base + "/v1"}],
        "context_window_fallback_dict": {"claude-test": "openai/x"},
        "num_retries": 3,
        "mock_response": "pwned",
        "litellm_metadata": {"x": 1},
        "metadata": {"api_base": attacker.base, "model_info": {"id": "x"}},
        "model_list": [{"model_name": "x", "litellm_params": {"api_base": attacker.base}}],
        "user_config": {"model_list": []},
        "base_model": "openai/x",
        "callbacks": ["langfuse"],
        "success_callback": ["webhook"],
        "client": None,
        "extra_body": {"api_base": attacker.base},
        "extra_query": {"api_base": attacker.base},
        "prompt": {"id": "pmpt_1"},
        "prompt_id": "pmpt_1",
        "use_chat_completions_api": True,
        "allowed_openai_params": ["api_base"],
        "background": True,
        "model_info": {"supported_endpoints": ["/v1/responses"]},
        "proxy_server_request": {"url": attacker.base},
        "shared_session": None,
    }


@pytest.mark.parametrize("stream", [False, True])
async def test_translated_request_cannot_redirect_the_key(
    translating_gw: RunningGateway,
    claude: FakeMessages,
    attacker: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    assert translating_gw.litellm is not None
    litellm = await translating_gw.litellm.module()
    calls: list[dict[str, Any]] = []
    real = litellm.aresponses

    async def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await real(**kwargs)

    monkeypatch.setattr(litellm, "aresponses", spy)
    body = {"model": "claude-test", "input": "hi", "stream": stream, **_hostile(attacker)}
    async with (
        aiohttp.ClientSession() as http,
        http.post(translating_gw.url + "/v1/responses", json=body) as resp,
    ):
        text = await resp.text()
        assert resp.status == 200, text
    assert "pwned" not in text
    assert attacker.seen == []
    assert [s.path for s in claude.seen] == ["/v1/messages"]
    assert claude.seen[0].headers["x-api-key"] == CONFIGURED_ANTHROPIC_KEY
    ours = {"model", "stream", "api_key", "api_base", "shared_session"}
    [kwargs] = calls
    assert set(kwargs) <= ours | RESPONSES_FIELDS, set(kwargs) - ours - RESPONSES_FIELDS
    assert kwargs["api_base"] == claude.base and kwargs["shared_session"] is not None
    assert attacker.base not in repr({k: v for k, v in kwargs.items() if k != "shared_session"})


# -- hostile bodies ------------------------------------------------------------------------------

parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["input_text", "output_text", "input_image", "weird"]) | json_values},
    optional={"text": json_values, "image_url": json_values},
)
items = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            [
                "message",
                "function_call",
                "function_call_output",
                "custom_tool_call_output",
                "reasoning",
                "compaction_trigger",
                "weird",
            ]
        )
        | json_values,
        "role": st.sampled_from(["user", "assistant", "developer", "system"]) | json_values,
        "content": st.text(max_size=40) | st.lists(parts | json_values, max_size=3) | json_values,
        "call_id": json_values,
        "name": json_values,
        "output": st.text(max_size=20) | st.lists(parts, max_size=2) | json_values,
    },
)
responses_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["memproxy/echo", "gpt-4o-mini", "", "unknown-x"]) | json_values,
        "input": st.text(max_size=40) | st.lists(items | json_values, max_size=5) | json_values,
        "instructions": st.text(max_size=30) | json_values,
        "stream": st.booleans() | json_values,
        "tools": json_values,
        "max_output_tokens": json_values,
        "previous_response_id": json_values,
        "metadata": json_values,
    },
)


@pytest.fixture
def threaded_gateway() -> Iterator[httpx.Client]:
    with ThreadedGateway() as gw, httpx.Client(base_url=gw.url, timeout=30) as http:
        yield http
        assert http.get("/health").json()["status"] == "ok"


@FUZZ
@given(body=responses_bodies)
def test_hostile_responses_bodies_never_crash(
    threaded_gateway: httpx.Client, body: dict[str, Any]
) -> None:
    _check(threaded_gateway, "/v1/responses", json.dumps(body).encode())


async def test_unhashable_part_and_item_types_are_no_crash(memory_gw: RunningGateway) -> None:
    odd: Any = [
        {"type": "message", "role": "user", "content": [{"type": ["input_text"], "text": "x"}]},
        {"type": {"a": 1}, "role": "user"},
        {"type": "message", "role": ["user"], "content": "hi"},
        {"type": "message", "role": "user", "content": "Where do the invoices live?"},
    ]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            memory_gw.url + "/v1/responses", json={"model": "memproxy/echo", "input": odd}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def test_odd_upstream_events_are_relayed_unchanged() -> None:
    odd = (
        b'event: x\ndata: {"type": ["response.completed"]}\n\n'
        b'data: {"type": "response.output_text.delta", "delta": 5}\n\n'
        b"data: [1, 2]\n\n"
        b'data: {"type": "response.completed", "response": []}\n\n'
    )

    async def upstream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(odd)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/responses", upstream)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        config = config_for(f"http://127.0.0.1:{server.port}")
        async with (
            running_gateway(config, litellm=False) as gateway,
            aiohttp.ClientSession() as http,
        ):
            body = {"model": "gpt-4o", "input": "hi", "stream": True}
            async with http.post(gateway.url + "/v1/responses", json=body) as resp:
                assert resp.status == 200
                assert await resp.read() == odd
    [row] = await rows_when(1)
    assert row["status"] == "ok"
