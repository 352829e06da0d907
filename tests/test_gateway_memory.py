"""Memory end to end: recall before the call, store after it, per project, both APIs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anthropic
import openai
import pytest

from memproxy_cli.memory.backend import Memory, Turn
from memproxy_cli.memory.service import MemoryService
from memproxy_cli.paths import get_paths
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

FACT = "Our orders service stores everything in PostgreSQL 16, database orders_db."


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    provider.behaviour.reply = "Noted: PostgreSQL 16 with orders_db."
    yield provider
    await provider.close()


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    config = config_for(fake.base, memory={"backend": "local"})
    async with running_gateway(config, litellm=False) as gateway:
        yield gateway


def oai(gw: RunningGateway, project: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gw.url + "/v1",
        api_key="k",
        max_retries=0,
        default_headers={"x-memproxy-project": project},
    )


def ant(gw: RunningGateway, project: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=gw.url,
        api_key="k",
        max_retries=0,
        default_headers={"x-memproxy-project": project},
    )


async def _tell(gw: RunningGateway, project: str, text: str) -> None:
    async with oai(gw, project) as client:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    assert gw.memory is not None
    await gw.memory.drain(10)


async def _echo_openai(
    gw: RunningGateway, project: str, messages: list[dict[str, Any]]
) -> tuple[Any, Any]:
    async with oai(gw, project) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="memproxy/echo",
            messages=messages,  # type: ignore[arg-type]
        )
    reply = raw.parse()
    return raw.headers, json.loads(reply.choices[0].message.content or "{}")


async def test_fact_recalled_in_same_project_only(gw: RunningGateway) -> None:
    await _tell(gw, "alpha", FACT)
    question = [{"role": "user", "content": "Which database does the orders service use?"}]
    headers, view = await _echo_openai(gw, "alpha", question)
    assert headers["x-memproxy-memories"] == "1"
    last = view["messages"][-1]
    assert last["role"] == "user"
    assert "orders_db" in json.dumps(last["content"])
    headers_b, view_b = await _echo_openai(gw, "beta", question)
    assert headers_b["x-memproxy-memories"] == "0"
    assert "orders_db" not in json.dumps(view_b)


async def test_anthropic_injection_keeps_cached_prefix(gw: RunningGateway) -> None:
    await _tell(gw, "alpha", FACT)
    system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    history = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "Which database does the orders service use?"},
    ]
    async with ant(gw, "alpha") as client:
        raw = await client.messages.with_raw_response.create(
            model="memproxy/echo",
            max_tokens=50,
            system=system,
            messages=history,  # type: ignore[arg-type]
        )
        message = await raw.parse()
    assert raw.headers["x-memproxy-memories"] == "1"
    block = message.content[0]
    assert block.type == "text"
    view = json.loads(block.text)
    assert view["system"] == system
    assert view["messages"][:2] == history[:2]
    assert "orders_db" in json.dumps(view["messages"][-1])


async def test_tool_result_turn_triggers_no_recall(gw: RunningGateway) -> None:
    await _tell(gw, "alpha", FACT)
    messages = [
        {"role": "user", "content": "Which database does the orders service use?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "grep", "input": {"q": "database"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "orders service database",
                }
            ],
        },
    ]
    async with ant(gw, "alpha") as client:
        raw = await client.messages.with_raw_response.create(
            model="memproxy/echo",
            max_tokens=50,
            messages=messages,  # type: ignore[arg-type]
        )
        message = await raw.parse()
    assert raw.headers["x-memproxy-memories"] == "0"
    block = message.content[0]
    assert block.type == "text" and "PostgreSQL 16" not in block.text


async def test_secret_is_stored_redacted(gw: RunningGateway) -> None:
    secret = "sk-proj-" + "Zx9" * 12
    await _tell(gw, "alpha", f"Remember the staging key is {secret} for orders.")
    assert gw.memory is not None
    backend = gw.memory.backend_for(gw.state.config.memory)
    assert backend is not None
    stored = await backend.list("alpha")
    assert stored, "the turn was not stored"
    assert all(secret not in m.text for m in stored)
    assert any("REDACTED" in m.text for m in stored)


async def test_streamed_turn_is_remembered(gw: RunningGateway) -> None:
    async with oai(gw, "gamma") as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": FACT}], stream=True
        )
        [c async for c in stream]
    assert gw.memory is not None
    await gw.memory.drain(10)
    backend = gw.memory.backend_for(gw.state.config.memory)
    assert backend is not None
    stored = await backend.list("gamma")
    assert len(stored) == 1 and "Noted: PostgreSQL 16" in stored[0].text


class _SlowBackend:
    name = "slow"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        if self.fail:
            raise RuntimeError("backend exploded")
        await asyncio.sleep(30)
        return []

    async def add(self, scope: str, turn: Turn) -> str | None:
        return None

    async def list(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        return []

    async def forget(self, scope: str, memory_id: str) -> bool:
        return False

    async def export(self, scope: str) -> Sequence[Memory]:
        return []

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("fail", [False, True])
async def test_slow_or_failing_backend_costs_at_most_the_budget(
    fake: FakeProvider, fail: bool
) -> None:
    config = config_for(fake.base, memory={"backend": "local", "recall_timeout_ms": 200})
    service = MemoryService(config, get_paths(), backend=_SlowBackend(fail))
    async with running_gateway(config, litellm=False, memory=service) as gw:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with oai(gw, "alpha") as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "what db?"}]
            )
        elapsed = loop.time() - started
    assert raw.parse().choices[0].message.content
    error = raw.headers["x-memproxy-memory-error"]
    assert ("exploded" in error) if fail else ("timeout" in error)
    # Generous bound (loaded CI): far below the backend's 30 s stall.
    assert elapsed < 10


async def test_claude_code_turn_with_trailing_system_message(gw: RunningGateway) -> None:
    """Claude Code 2.x sends context as a `system` message after the user's turn."""
    await _tell(gw, "alpha", FACT)
    user_turn = {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "<system-reminder>\nToday's date is 2026-11-23.\n</system-reminder>",
            },
            {
                "type": "text",
                "text": "Which database does the orders service use?",
                "cache_control": {"type": "ephemeral"},
            },
        ],
    }
    context = {"role": "system", "content": "Available agent types for the Agent tool: ..."}
    async with ant(gw, "alpha") as client:
        raw = await client.messages.with_raw_response.create(
            model="memproxy/echo",
            max_tokens=50,
            messages=[user_turn, context],  # type: ignore[list-item]
        )
        message = await raw.parse()
    assert raw.headers["x-memproxy-memories"] == "1"
    block = message.content[0]
    assert block.type == "text"
    sent_user, sent_context = json.loads(block.text)["messages"]
    assert sent_context == context
    assert sent_user["content"][:2] == user_turn["content"]
    assert "orders_db" in json.dumps(sent_user["content"][2:])


class _CountingBackend(_SlowBackend):
    def __init__(self) -> None:
        super().__init__()
        self.searches = 0

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        self.searches += 1
        return [
            Memory(id="m1", scope=scope, text="User: db? | Assistant: orders_db", created_at=1.0)
        ]


class _RemoteBackend(_CountingBackend):
    name = "supermemory"

    def __init__(self) -> None:
        super().__init__()
        self.forgotten: set[str] = set()

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        found = await super().search(scope, query, k)
        return [m for m in found if m.id not in self.forgotten]

    async def forget(self, scope: str, memory_id: str) -> bool:
        self.forgotten.add(memory_id)
        return True


async def _ask(gw: Any, expected: list[str]) -> None:
    """Ask the same question once per item; each answer injects that many memories."""
    for memories in expected:
        headers, _ = await _echo_openai(
            gw, "alpha", [{"role": "user", "content": "which db do we use?"}]
        )
        assert headers["x-memproxy-memories"] == memories
        await gw.memory.drain(5)  # the cache fill runs in the background


async def test_remote_recalls_are_shared_through_redis_until_a_turn_or_forget(
    redis_url: str, fake: FakeProvider
) -> None:
    from memproxy_cli.budget.recall_cache import RecallCache

    config = config_for(fake.base, memory={"backend": "local", "store": False}, redis_url=redis_url)
    backend = _RemoteBackend()
    service = MemoryService(config, get_paths(), backend=backend, cache=RecallCache(redis_url))
    async with running_gateway(config, litellm=False, memory=service) as gw:
        await _ask(gw, ["1", "1"])
        assert backend.searches == 1, "the second identical recall must come from Redis"
        memory = service.backend_for(config.memory)
        assert memory is not None
        await memory.add("alpha", Turn(user="a new turn", assistant="ok"))
        await _ask(gw, ["1"])
        assert backend.searches == 2, "a new turn of the scope drops its cached recalls"
        assert await memory.forget("alpha", "m1")
        await _ask(gw, ["0"])  # never the forgotten memory from the cache
        assert backend.searches == 3
        await service.close()


async def test_a_per_instance_backend_is_never_cached(redis_url: str, fake: FakeProvider) -> None:
    from memproxy_cli.budget.recall_cache import RecallCache

    config = config_for(fake.base, memory={"backend": "local", "store": False}, redis_url=redis_url)
    backend = _CountingBackend()  # not a remote backend: another instance has another store
    service = MemoryService(config, get_paths(), backend=backend, cache=RecallCache(redis_url))
    async with running_gateway(config, litellm=False, memory=service) as gw:
        await _ask(gw, ["1", "1"])
    await service.close()
    assert backend.searches == 2


async def test_the_daemon_recalls_a_paraphrase_by_meaning(gw: RunningGateway) -> None:
    from memproxy_cli.memory.local import LocalMemoryBackend

    await _tell(gw, "alpha", "My dog is called Biscuit, she is a beagle.")
    assert gw.memory is not None
    backend = gw.memory.backend_for(gw.state.config.memory)
    assert isinstance(backend, LocalMemoryBackend)
    assert await asyncio.to_thread(backend.wait_embedded_sync)
    assert await asyncio.to_thread(backend.wait_vectors_loaded_sync, "alpha")
    question = [{"role": "user", "content": "What is the name of my pet?"}]
    headers, view = await _echo_openai(gw, "alpha", question)
    assert headers["x-memproxy-memories"] == "1"
    assert "Biscuit" in json.dumps(view["messages"][-1])
    headers_b, _ = await _echo_openai(gw, "beta", question)
    assert headers_b["x-memproxy-memories"] == "0"
