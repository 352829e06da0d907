"""Per-project policy and identity on the main port, end to end."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest

from memproxy_cli.paths import get_paths
from memproxy_cli.store.queries import open_queries
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_allowed_models_per_project(fake: FakeProvider) -> None:
    config = config_for(
        fake.base, projects={"locked": {"allowed_models": ["gpt-4o-mini", "memproxy/echo"]}}
    )
    headers = {"x-memproxy-project": "locked"}
    async with running_gateway(config, litellm=False) as gw:
        async with openai.AsyncOpenAI(
            base_url=gw.url + "/v1", api_key="k", max_retries=0, default_headers=headers
        ) as oai:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(openai.PermissionDeniedError) as denied:
                await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        async with anthropic.AsyncAnthropic(
            base_url=gw.url, api_key="k", max_retries=0, default_headers=headers
        ) as ant:
            with pytest.raises(anthropic.PermissionDeniedError) as denied_ant:
                await ant.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert "not allowed for project 'locked'" in str(denied.value)
    assert denied_ant.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert len(fake.seen) == 1


async def test_project_memory_override(fake: FakeProvider) -> None:
    config = config_for(
        fake.base,
        memory={"backend": "local"},
        projects={"secret-project": {"memory": {"backend": "none"}}},
    )
    async with running_gateway(config, litellm=False) as gw:
        for project in ("secret-project", "open-project"):
            async with openai.AsyncOpenAI(
                base_url=gw.url + "/v1",
                api_key="k",
                max_retries=0,
                default_headers={"x-memproxy-project": project},
            ) as oai:
                await oai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "our db is mysql"}]
                )
        assert gw.memory is not None
        await gw.memory.drain(10)
        backend = gw.memory.backend_for(gw.state.config.memory)
        assert backend is not None
        assert await backend.list("secret-project") == []
        assert len(await backend.list("open-project")) == 1


async def test_user_id_rules_on_the_main_port(fake: FakeProvider) -> None:
    config = config_for(
        fake.base,
        user_id_mappings={
            "header_patterns": [
                {"header": "User-Agent", "pattern": "^claude-cli/", "user_id": "claude-user"}
            ],
            "default_user_id": "someone",
        },
    )
    async with running_gateway(config, litellm=False) as gw:
        async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0) as oai:
            await oai.chat.completions.create(model="memproxy/echo", messages=MESSAGES)
            await oai.chat.completions.create(
                model="memproxy/echo",
                messages=MESSAGES,
                extra_headers={"x-memory-user-id": "explicit-user"},
            )
        async with anthropic.AsyncAnthropic(
            base_url=gw.url,
            api_key="k",
            max_retries=0,
            default_headers={
                "User-Agent": "claude-cli/2.1.197 (external, cli)",
                "x-pycharm-instance": "pc-1",
            },
        ) as ant:
            await ant.messages.create(model="memproxy/echo", max_tokens=5, messages=MESSAGES)
    queries = open_queries(None, get_paths())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    rows: list[Any] = []
    while len(rows) < 3 and loop.time() < deadline:
        rows = await asyncio.to_thread(queries.recent_rows, 10)
        await asyncio.sleep(0.05)
    users = {r["user_id"]: dict(r) for r in rows}
    assert set(users) == {"someone", "explicit-user", "claude-user"}
    assert users["claude-user"]["client"] == "claude-cli"
    assert users["claude-user"]["client_instance"] == "pc-1"
    assert users["someone"]["client"] == "openai-python"
