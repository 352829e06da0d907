"""MemoryService: recall within budget, inject per strategy, remember in the background."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.openai_chat import OPENAI_CHAT
from memproxy_cli.config import parse_config
from memproxy_cli.memory.backend import Memory, Turn
from memproxy_cli.memory.service import MemoryService
from memproxy_cli.paths import get_paths

FAMILIES = {"anthropic": ANTHROPIC_MESSAGES, "openai": OPENAI_CHAT}
FACT_USER = "remember: we use PostgreSQL 16 for the main db"


class StubBackend:
    """A backend whose search and add can hang or fail on demand."""

    name = "stub"

    def __init__(self, fail: Exception | None = None, hang: bool = False) -> None:
        self.fail, self.hang = fail, hang
        self.release = asyncio.Event()
        self.added: list[tuple[str, Turn]] = []
        self.searches = 0

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        self.searches += 1
        if self.hang:
            await self.release.wait()
        if self.fail:
            raise self.fail
        return [Memory(id="s1", scope=scope, text="User: a fact\nAssistant: ok", created_at=0.0)]

    async def add(self, scope: str, turn: Turn) -> str | None:
        if self.hang:
            await self.release.wait()
        if self.fail:
            raise self.fail
        self.added.append((scope, turn))
        return "id"

    async def list(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        return []

    async def forget(self, scope: str, memory_id: str) -> bool:
        return False

    async def export(self, scope: str) -> Sequence[Memory]:
        return []

    async def close(self) -> None:
        self.release.set()


def service(yaml_text: str = "", **kw: Any) -> MemoryService:
    return MemoryService(parse_config(yaml_text), get_paths().ensure(), **kw)


def anthropic(text: str) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "system": [
            {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": text}],
    }


def openai(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


async def teach(svc: MemoryService, scope: str, project: str | None = None) -> None:
    svc.remember(scope, project, FACT_USER, "Noted: PostgreSQL 16.", "m", "req-1")
    await svc.drain(timeout=10)


async def test_fact_told_in_a_project_is_injected_there_and_not_elsewhere() -> None:
    svc = service()
    try:
        await teach(svc, "alpha", "alpha")
        body = anthropic("what database does this project use?")
        system_before = json.dumps(body["system"])
        recall = await svc.recall(ANTHROPIC_MESSAGES, body, "alpha", "alpha")
        assert recall.error is None
        assert recall.memories_injected == 1 and recall.modified
        assert recall.user_text == "what database does this project use?"
        assert json.dumps(body["system"]) == system_before
        injected = body["messages"][-1]["content"][-1]["text"]
        assert "PostgreSQL 16" in injected and injected.startswith("<memproxy-memories>")

        other = openai("what database does this project use?")
        untouched = copy.deepcopy(other)
        recall = await svc.recall(OPENAI_CHAT, other, "beta", "beta")
        assert recall.memories_injected == 0 and not recall.modified
        assert other == untouched
    finally:
        await svc.close()


async def test_openai_route_and_system_strategy_from_project_override() -> None:
    svc = service("projects:\n  alpha:\n    memory:\n      injection_strategy: system\n")
    try:
        await teach(svc, "alpha", "alpha")
        body = openai("which postgres version?")
        recall = await svc.recall(OPENAI_CHAT, body, "alpha", "alpha")
        assert recall.memories_injected == 1
        assert body["messages"][0]["role"] == "system"
        assert "PostgreSQL 16" in body["messages"][0]["content"]
        assert body["messages"][1] == {"role": "user", "content": "which postgres version?"}
    finally:
        await svc.close()


async def test_tool_result_turn_and_background_call_do_not_search() -> None:
    stub = StubBackend()
    svc = service(backend=stub)
    tool_turn = anthropic("hi")
    tool_turn["messages"] = [
        {"role": "user", "content": "run it"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    before = copy.deepcopy(tool_turn)
    recall = await svc.recall(ANTHROPIC_MESSAGES, tool_turn, "p", "p")
    assert (recall.user_text, recall.memories_injected, recall.modified) == (None, 0, False)
    assert tool_turn == before
    probe = {"max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}
    assert (await svc.recall(ANTHROPIC_MESSAGES, probe, "p", "p")).user_text is None
    assert stub.searches == 0
    await svc.close()


async def test_slow_backend_costs_at_most_the_budget() -> None:
    stub = StubBackend(hang=True)
    svc = service("memory:\n  recall_timeout_ms: 50\n", backend=stub)
    body = openai("what database?")
    before = copy.deepcopy(body)
    recall = await asyncio.wait_for(svc.recall(OPENAI_CHAT, body, "p", None), timeout=30)
    assert recall.error == "timeout after 50 ms"
    assert recall.memories_injected == 0 and body == before
    assert recall.user_text == "what database?"
    await svc.close()


async def test_failing_backend_sets_error_and_keeps_secrets_out() -> None:
    secret = "sk-ant-api03-" + "k" * 40
    svc = service(backend=StubBackend(fail=RuntimeError(f"upstream said no to {secret}\nline2")))
    body = anthropic("what database?")
    recall = await svc.recall(ANTHROPIC_MESSAGES, body, "p", None)
    assert recall.error is not None
    assert recall.error.startswith("backend error: RuntimeError: upstream said no")
    assert secret not in recall.error and "\n" not in recall.error
    assert recall.memories_injected == 0
    await svc.close()


async def test_backend_none_override_turns_memory_off_for_one_project() -> None:
    stub = StubBackend()
    svc = service("projects:\n  quiet:\n    memory:\n      backend: none\n", backend=stub)
    recall = await svc.recall(OPENAI_CHAT, openai("hello there"), "quiet", "quiet")
    assert recall.user_text is None and stub.searches == 0
    svc.remember("quiet", "quiet", "hello", "hi", None, None)
    assert svc.pending == 0
    assert (
        await svc.recall(OPENAI_CHAT, openai("hello there"), "loud", "loud")
    ).memories_injected == 1
    await svc.close()


async def test_remember_redacts_skips_empty_and_respects_store_off() -> None:
    stub = StubBackend()
    svc = service("projects:\n  nostore:\n    memory:\n      store: false\n", backend=stub)
    secret = "ghp_" + "A" * 36
    svc.remember("p", "p", f"token {secret}", "done", "m", "r")
    svc.remember("p", "p", "question", "   ", "m", "r")
    svc.remember("nostore", "nostore", "question", "answer", "m", "r")
    await svc.drain(timeout=10)
    assert len(stub.added) == 1
    scope, turn = stub.added[0]
    assert scope == "p" and turn.user == "token [REDACTED:github]" and turn.request_id == "r"
    await svc.close()


async def test_pending_stores_are_capped_and_drain_waits() -> None:
    stub = StubBackend(hang=True)
    svc = service(backend=stub, max_pending=2)
    for i in range(5):
        svc.remember("p", None, f"q{i}", "a", None, None)
    assert svc.pending == 2 and svc.dropped_stores == 3
    await svc.drain(timeout=0.01)
    assert svc.pending == 2  # still blocked
    stub.release.set()
    await svc.drain(timeout=10)
    assert svc.pending == 0 and len(stub.added) == 2
    await svc.close()


async def test_failed_store_is_counted_not_raised() -> None:
    svc = service(backend=StubBackend(fail=OSError("disk full")))
    svc.remember("p", None, "q", "a", None, None)
    await svc.drain(timeout=10)
    assert svc.failed_stores == 1
    await svc.close()


async def test_local_path_from_config(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "mem.sqlite3"
    svc = service(f"memory:\n  local:\n    path: {db}\n")
    await teach(svc, "p")
    await svc.close()
    assert db.exists()


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_already_present_memory_is_not_injected_again(api: str) -> None:
    svc = service()
    try:
        await teach(svc, "p")
        body: dict[str, Any] = {
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": FACT_USER},
                {"role": "assistant", "content": "Noted: PostgreSQL 16."},
                {"role": "user", "content": "so which postgresql version again?"},
            ],
        }
        recall = await svc.recall(FAMILIES[api], body, "p", None)
        assert recall.memories_injected == 0 and recall.error is None
    finally:
        await svc.close()
