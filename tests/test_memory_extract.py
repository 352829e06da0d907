"""Extraction with the user's own model, end to end: a real gateway, a fake upstream on loopback
that answers the client's tool loop and, separately, memproxy's extraction call."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from aiohttp.test_utils import TestServer

from memproxy_cli.gateway.extract_calls import GatewayExtractor
from memproxy_cli.gateway.resources import BUDGETS
from memproxy_cli.memory.backend import Memory
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.service import MemoryService
from tests.fixtures.fake_supermemory import FakeSupermemory
from tests.fixtures.fake_upstreams import FakeProvider, Seen
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import rows_when, until
from tests.test_observability_metrics import scrape, total

ROOT = Path(__file__).resolve().parent.parent
EXTRACT = "memproxy-extract"  # the client of memproxy's own extraction calls
MARKER = "extract durable facts"  # in memproxy's extraction prompt, never in a client's
CALLER_KEY = "sk-caller-own-key-0123456789abcdef"
CALLER_SYSTEM = "You are CallerBot. Chrome rule: always answer in haiku."
HUMAN = "The staging database keeps moving around, can you pin down where it lives now?"
ANSWER = (
    "I checked config/staging.yaml: the staging database is PostgreSQL 16 on port 6543, "
    "reachable as staging-db.internal. I also updated the README so the old port 5432 is "
    "no longer mentioned anywhere, and reran the connection test, which passed."
)
FACTS = [
    "The staging database is PostgreSQL 16 on port 6543.",
    "The staging database host is staging-db.internal.",
]
PRICING = {"gpt-4o-mini": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def _facts_reply(facts: list[str]) -> str:
    return json.dumps({"facts": facts})


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    provider.behaviour.reply = ANSWER
    yield provider
    await provider.close()


def _config(fake: FakeProvider, **memory: Any) -> Any:
    return config_for(
        fake.base,
        memory={"backend": "local", **memory},
        pricing=PRICING,
        server={"max_retries": 0},
    )


def _client(gw: RunningGateway, project: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gw.url + "/v1",
        api_key=CALLER_KEY,
        max_retries=0,
        default_headers={"x-memproxy-project": project, "x-memory-user-id": "dana"},
    )


async def _tool_loop(
    gw: RunningGateway, fake: FakeProvider, project: str, drain: bool = True
) -> None:
    """One turn of the human: a tool call, its result, then the final answer."""
    fake.behaviour.tool_calls = [("read_file", {"path": "config/staging.yaml"})]
    messages: list[Any] = [
        {"role": "system", "content": CALLER_SYSTEM},
        {"role": "user", "content": HUMAN},
    ]
    async with _client(gw, project) as client:
        first = await client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=TOOLS
        )
        call = first.choices[0].message.tool_calls
        assert call
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call[0].id, "content": "port: 6543"})
        final = await client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=TOOLS
        )
    assert final.choices[0].message.content == ANSWER
    memory = gw.memory
    assert isinstance(memory, MemoryService)
    if drain:
        await memory.drain(30)


def _extraction_calls(fake: FakeProvider) -> list[Seen]:
    return [s for s in fake.seen if MARKER.encode() in s.raw]


async def _stored(gw: RunningGateway, project: str) -> list[Memory]:
    memory = gw.memory
    assert isinstance(memory, MemoryService)
    backend = memory.backend_for(gw.state.config.memory_for(project))
    assert isinstance(backend, LocalMemoryBackend)
    return list(await backend.export(project))


async def _ask(gw: RunningGateway, fake: FakeProvider, project: str, question: str) -> str:
    """A new conversation; what the upstream received as its last user message."""
    async with _client(gw, project) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    assert raw.headers["x-memproxy-memories"] != "0"
    received = fake.seen[-1].body["messages"][-1]["content"]
    assert isinstance(received, str)
    return received


async def test_tool_loop_turn_becomes_facts_that_are_injected_instead_of_the_turn(
    fake: FakeProvider,
) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    async with running_gateway(_config(fake, extract_model="gpt-4o-mini"), litellm=False) as gw:
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
        turns = [m for m in stored if m.metadata.get("kind") != "fact"]
        facts = [m for m in stored if m.metadata.get("kind") == "fact"]
        assert len(turns) == 1 and turns[0].metadata["facts"] == 2
        assert sorted(m.text for m in facts) == sorted(FACTS)
        assert {m.metadata["fact_of"] for m in facts} == {turns[0].id}
        assert ANSWER in turns[0].text  # the turn is kept as the facts' source
        # Recall by meaning too, as in the daemon once its model has loaded: facts of one turn
        # on one subject are not "updates" of each other, so both are injected.
        memory = gw.memory
        assert isinstance(memory, MemoryService)
        backend = memory.backend_for(gw.state.config.memory)
        assert isinstance(backend, LocalMemoryBackend)
        assert await asyncio.to_thread(backend.wait_embedded_sync)

        received = await _ask(gw, fake, "alpha", "Which port does the staging database use?")
    assert FACTS[0] in received and FACTS[1] in received
    assert "reran the connection test" not in received  # the raw answer is not injected
    assert HUMAN not in received


async def test_extraction_call_carries_only_the_turn_and_is_the_projects_spend(
    fake: FakeProvider,
) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    async with running_gateway(_config(fake, extract_model="gpt-4o-mini"), litellm=False) as gw:
        await _tool_loop(gw, fake, "alpha")
        rows = await rows_when(3)
        status, metrics = await scrape(gw.url)
    assert status == 200
    assert total(metrics, "memproxy_requests_total", project="alpha", client=EXTRACT) == 1
    [call] = _extraction_calls(fake)
    body = call.body
    assert body["model"] == "gpt-4o-mini"
    assert set(body) == {"model", "messages"}  # no tools, no caller fields
    system, user = body["messages"]
    assert system["role"] == "system" and MARKER in system["content"]
    assert CALLER_SYSTEM not in call.raw.decode()
    assert "chrome rule" not in call.raw.decode().lower()
    data = json.loads(user["content"].split("\n", 1)[1])
    assert data["user"] == HUMAN and data["answer"] == ANSWER
    assert data["actions"] == "read config/staging.yaml"  # capture's note of what was done
    assert "port: 6543" not in call.raw.decode()  # tool output is never sent
    # The caller's credentials and headers stay with the caller's own calls.
    assert CALLER_KEY not in json.dumps(dict(call.headers))
    assert call.headers["user-agent"].startswith("memproxy/")
    assert "x-memproxy-project" not in call.headers and "x-memory-user-id" not in call.headers
    [row] = [r for r in rows if r["client"] == EXTRACT]
    assert (row["project"], row["user_id"], row["model"], row["status"]) == (
        "alpha",
        "dana",
        "gpt-4o-mini",
        "ok",
    )
    assert row["prompt_tokens"] == 11 and row["completion_tokens"] == 7
    assert row["cost_usd"] == pytest.approx(11 * 0.001 + 7 * 0.002)
    callers = [r for r in rows if r["client"] != EXTRACT]
    assert len(callers) == 2


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        (500, ""),
        (200, "Sure! The staging database is on port 6543."),
        (200, json.dumps({"facts": [1, 2]})),
        (200, json.dumps({"facts": ["The staging DB is on 6543."], "note": "extra"})),
    ],
    ids=["upstream-500", "not-json", "not-strings", "extra-field"],
)
async def test_failed_extraction_stores_the_turn_as_it_is(
    fake: FakeProvider, status: int, reply: str
) -> None:
    fake.behaviour.marked = [(MARKER, status, reply)]
    async with running_gateway(_config(fake, extract_model="gpt-4o-mini"), litellm=False) as gw:
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
        memory = gw.memory
        assert isinstance(memory, MemoryService) and memory.extraction is not None
        assert memory.extraction.failed == 1 and memory.extraction.extracted == 0
        assert len(_extraction_calls(fake)) == 1
        received = await _ask(gw, fake, "alpha", "Which port does the staging database use?")
    [turn] = stored
    assert "facts" not in turn.metadata and turn.metadata.get("kind") is None
    assert turn.text.startswith(f"User: {HUMAN}")
    assert "port 6543" in received  # the turn itself is recalled, as without extraction


async def test_no_extraction_call_when_off_by_default(fake: FakeProvider) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    async with running_gateway(_config(fake), litellm=False) as gw:
        assert gw.state.config.memory.extract_model is None
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
    assert len(fake.seen) == 2 and not _extraction_calls(fake)
    [turn] = stored
    assert "facts" not in turn.metadata


async def test_a_project_override_turns_extraction_on_for_that_project_only(
    fake: FakeProvider,
) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    config = config_for(
        fake.base,
        memory={"backend": "local"},
        projects={"alpha": {"memory": {"extract_model": "gpt-4o-mini"}}},
    )
    async with running_gateway(config, litellm=False) as gw:
        await _tool_loop(gw, fake, "beta")
        assert not _extraction_calls(fake)
        await _tool_loop(gw, fake, "alpha")
        assert len(_extraction_calls(fake)) == 1
        assert len(await _stored(gw, "alpha")) == 3
        assert len(await _stored(gw, "beta")) == 1


async def test_a_project_can_turn_off_extraction_that_is_on_for_every_project(
    fake: FakeProvider,
) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    config = config_for(
        fake.base,
        memory={"backend": "local", "extract_model": "gpt-4o-mini"},
        projects={"beta": {"memory": {"extract_model": False}}},
    )
    async with running_gateway(config, litellm=False) as gw:
        assert gw.state.config.memory_for("beta").extract_model is None
        await _tool_loop(gw, fake, "beta")
        assert not _extraction_calls(fake)
        [turn] = await _stored(gw, "beta")
        assert "facts" not in turn.metadata
        await _tool_loop(gw, fake, "alpha")
        assert len(_extraction_calls(fake)) == 1
        assert len(await _stored(gw, "alpha")) == 3


async def test_forgetting_the_turn_forgets_its_facts(fake: FakeProvider) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    async with running_gateway(_config(fake, extract_model="gpt-4o-mini"), litellm=False) as gw:
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
        [turn] = [m for m in stored if m.metadata.get("kind") != "fact"]
        fact = next(m for m in stored if m.metadata.get("kind") == "fact")
        memory = gw.memory
        assert isinstance(memory, MemoryService)
        backend = memory.backend_for(gw.state.config.memory)
        assert backend is not None
        assert await backend.forget("alpha", fact.id)  # one fact alone
        assert len(await _stored(gw, "alpha")) == 2
        assert await backend.forget("alpha", turn.id)
        assert await _stored(gw, "alpha") == []


async def test_a_model_the_project_may_not_use_is_not_called(fake: FakeProvider) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    config = config_for(
        fake.base,
        memory={"backend": "local", "extract_model": "gpt-4o"},
        projects={"alpha": {"allowed_models": ["gpt-4o-mini"]}},
    )
    async with running_gateway(config, litellm=False) as gw:
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
    assert not _extraction_calls(fake)
    [turn] = stored
    assert "facts" not in turn.metadata


async def test_the_answer_never_waits_for_extraction_and_the_queue_is_bounded(
    fake: FakeProvider,
) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    fake.behaviour.marked_gate = asyncio.Event()  # the extraction call hangs until released
    async with running_gateway(_config(fake, extract_model="gpt-4o-mini"), litellm=False) as gw:
        memory = gw.memory
        assert isinstance(memory, MemoryService)
        memory.use_extractor(GatewayExtractor(gw.server.app), max_pending=1)
        await _tool_loop(gw, fake, "alpha", drain=False)  # its answer came back meanwhile
        await until(lambda: _extraction_calls(fake), what="the extraction call")
        await _tool_loop(gw, fake, "beta", drain=False)  # the queue is full: stored as it is
        extraction = memory.extraction
        assert extraction is not None
        # The capture thread hands beta's turn over a moment after its answer.
        await until(lambda: extraction.skipped == 1, what="beta's turn past the full queue")
        await until(lambda: memory.pending == 1, what="beta's turn stored")
        assert len(await _stored(gw, "beta")) == 1
        assert await _stored(gw, "alpha") == []  # waiting for its facts
        fake.behaviour.marked_gate.set()
        await memory.drain(30)
        assert len(await _stored(gw, "alpha")) == 3
    assert len(_extraction_calls(fake)) == 1


async def test_an_anthropic_model_extracts_over_messages(fake: FakeProvider) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    async with running_gateway(
        _config(fake, extract_model="claude-haiku-4-5"), litellm=False
    ) as gw:
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
    [call] = _extraction_calls(fake)
    assert call.path == "/v1/messages"
    body = call.body
    assert body["model"] == "claude-haiku-4-5" and MARKER in body["system"]
    assert body["max_tokens"] > 0 and [m["role"] for m in body["messages"]] == ["user"]
    assert CALLER_KEY not in json.dumps(dict(call.headers))
    assert sorted(m.text for m in stored if m.metadata.get("kind") == "fact") == sorted(FACTS)


@pytest.mark.timeout(300)
async def test_the_recall_benchmark_extracts_through_the_gateway(
    fake: FakeProvider, tmp_path: Path
) -> None:
    """Plumbing only: the fake's one scripted fact knows nothing of the benchmark's facts, so
    the figures printed here mean nothing (the real figure needs a real model)."""
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(["The fake upstream answers tests."]))]
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"upstreams": {"openai": fake.base}, "pricing": PRICING}),
        encoding="utf-8",
    )
    facts_file = tmp_path / "facts.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "recall_quality.py"),
        *("--modes", "hybrid", "--chatter", "20", "--extract-model", "gpt-4o-mini"),
        *("--config", str(config), "--facts-file", str(facts_file)),
    ]
    env = {**os.environ, "MEMPROXY_HOME": str(tmp_path / "home")}
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    text = out.decode()
    turns = int(text.split(" turns,", 1)[0])
    assert len(_extraction_calls(fake)) == turns
    assert f"{turns} turns distilled into {turns} facts, 0 failed; {turns} calls" in text
    assert "extract  recall@5:" in text and "extraction adds over hybrid:" in text
    kept = json.loads(facts_file.read_text())
    assert kept["model"] == "gpt-4o-mini" and len(kept["facts"]) == turns


async def test_a_model_list_entry_extracts_with_its_configured_key(fake: FakeProvider) -> None:
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    config = config_for(
        fake.base,
        memory={"backend": "local", "extract_model": "team-extractor"},
        model_list=[
            {
                "model_name": "team-extractor",
                "litellm_params": {
                    "model": "anthropic/claude-test-1",
                    "api_base": fake.base,
                    "api_key": "sk-ant-configured-extractor-01",
                },
            }
        ],
    )
    async with running_gateway(config, litellm=False) as gw:
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
    [call] = _extraction_calls(fake)
    assert call.path == "/v1/messages" and call.body["model"] == "claude-test-1"
    assert call.headers["x-api-key"] == "sk-ant-configured-extractor-01"
    assert CALLER_KEY not in json.dumps(dict(call.headers))
    assert len([m for m in stored if m.metadata.get("kind") == "fact"]) == 2


@pytest.mark.parametrize(("daily_usd", "extracts"), [(1.0, True), (0.03, False)])
async def test_extraction_counts_against_the_budget_and_stops_at_it(
    fake: FakeProvider, daily_usd: float, extracts: bool
) -> None:
    """Each call here costs 0.025: the tool loop's two leave 0.05 spent."""
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    config = config_for(
        fake.base,
        memory={"backend": "local", "extract_model": "gpt-4o-mini"},
        pricing=PRICING,
        budgets={"alpha": {"daily_usd": daily_usd}},
    )
    async with running_gateway(config, litellm=False) as gw:
        await _tool_loop(gw, fake, "alpha")
        stored = await _stored(gw, "alpha")
        today, _ = gw.server.app[BUDGETS].spent("alpha")
    assert bool(_extraction_calls(fake)) is extracts
    assert today == pytest.approx(0.075 if extracts else 0.05)
    assert len(stored) == (3 if extracts else 1)


async def test_supermemory_distils_on_its_own_so_no_extraction_call_is_made(
    fake: FakeProvider,
) -> None:
    key = "sm_" + "test0123456789abcdefghij"
    sm = FakeSupermemory(api_key=key)
    server = TestServer(sm.app(), host="127.0.0.1", port=0)
    await server.start_server()
    config = config_for(
        fake.base,
        memory={
            "backend": "supermemory",
            "extract_model": "gpt-4o-mini",
            "supermemory": {"api_key": key, "base_url": str(server.make_url("")).rstrip("/")},
        },
    )
    fake.behaviour.marked = [(MARKER, 200, _facts_reply(FACTS))]
    try:
        async with running_gateway(config, litellm=False) as gw:
            await _tool_loop(gw, fake, "alpha")
    finally:
        await server.close()
    assert not _extraction_calls(fake)
    [document] = [d for docs in sm.documents.values() for d in docs.values()]
    assert HUMAN in json.dumps(document)
