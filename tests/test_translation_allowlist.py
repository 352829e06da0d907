"""A translated request never chooses where a configured key goes: the LiteLLM call is allowlisted.

LiteLLM reads many keyword arguments as configuration (`fallbacks`, `api_base` inside them,
`timeout`, `metadata`, `extra_headers`, ...). A request body that carried them used to reach
`litellm.acompletion` and make it send the configured key to a server the request named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

CONFIGURED_OPENAI_KEY = "sk-openai-configured-7777"
CONFIGURED_ANTHROPIC_KEY = "sk-ant-configured-7777"


@pytest.fixture
async def attacker() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    yield provider
    await provider.close()


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    config = config_for(
        "http://127.0.0.1:9",
        model_list=[
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": fake.base + "/v1",
                    "api_key": CONFIGURED_OPENAI_KEY,
                },
            },
            {
                "model_name": "claude-test",
                "litellm_params": {
                    "model": "anthropic/claude-test-1",
                    "api_base": fake.base,
                    "api_key": CONFIGURED_ANTHROPIC_KEY,
                },
            },
        ],
    )
    async with running_gateway(config) as gateway:
        yield gateway


def _hostile(attacker: FakeProvider) -> dict[str, Any]:
    """Everything LiteLLM would read as configuration, pointing at the attacker."""
    return {
        "timeout": 0.0001,
        "fallbacks": [{"model": "openai/x", "api_base": attacker.base + "/v1"}],
        "context_window_fallback_dict": {"gpt-4o": "openai/x"},
        "num_retries": 3,
        "mock_response": "pwned",
        "litellm_metadata": {"x": 1},
        "model_list": [{"model_name": "x", "litellm_params": {"api_base": attacker.base}}],
        "user_config": {"model_list": []},
        "base_model": "openai/x",
        "callbacks": ["langfuse"],
        "success_callback": ["webhook"],
        "input_cost_per_token": 0,
        "client": None,
        "extra_body": {"api_base": attacker.base},
        "proxy_server_request": {"url": attacker.base},
    }


@pytest.mark.parametrize("stream", [False, True])
async def test_messages_to_an_openai_model_cannot_redirect_the_key(
    gw: RunningGateway, fake: FakeProvider, attacker: FakeProvider, stream: bool
) -> None:
    body = {
        "model": "gpt-4o",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        **_hostile(attacker),
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.url + "/v1/messages", json=body) as resp:
            text = await resp.text()
            assert resp.status == 200, text
    assert "pwned" not in text
    assert "Hello from the fake upstream." in text or "Hello" in text
    assert attacker.seen == []
    assert [s.path for s in fake.seen] == ["/v1/chat/completions"]
    assert fake.seen[0].headers["Authorization"] == f"Bearer {CONFIGURED_OPENAI_KEY}"
    sent = fake.seen[0].body
    for name in ("fallbacks", "timeout", "mock_response", "litellm_metadata", "extra_body"):
        assert name not in sent


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_to_an_anthropic_model_cannot_redirect_the_key(
    gw: RunningGateway, fake: FakeProvider, attacker: FakeProvider, stream: bool
) -> None:
    body = {
        "model": "claude-test",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        **_hostile(attacker),
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.url + "/v1/chat/completions", json=body) as resp:
            text = await resp.text()
            assert resp.status == 200, text
    assert "pwned" not in text
    assert attacker.seen == []
    assert [s.path for s in fake.seen] == ["/v1/messages"]
    assert fake.seen[0].headers["x-api-key"] == CONFIGURED_ANTHROPIC_KEY


async def test_litellm_receives_only_allowlisted_arguments(
    gw: RunningGateway, fake: FakeProvider, attacker: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a request says, the keyword arguments of the call are ours or allowlisted."""
    from memproxy_cli.api.openai_chat import OPENAI_CHAT_FIELDS

    assert gw.litellm is not None
    litellm = await gw.litellm.module()
    calls: list[dict[str, Any]] = []
    real = litellm.acompletion

    async def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await real(**kwargs)

    monkeypatch.setattr(litellm, "acompletion", spy)
    ours = {"model", "messages", "api_key", "api_base", "shared_session", "stream"}
    async with aiohttp.ClientSession() as http:
        for path, model in (("/v1/messages", "gpt-4o"), ("/v1/chat/completions", "claude-test")):
            body = {
                "model": model,
                "max_tokens": 20,
                "messages": [{"role": "user", "content": "hi"}],
                "metadata": {"user_id": "u1", "api_base": attacker.base},
                **_hostile(attacker),
            }
            async with http.post(gw.url + path, json=body) as resp:
                assert resp.status == 200, await resp.text()
    assert len(calls) == 2
    for kwargs in calls:
        assert set(kwargs) <= ours | OPENAI_CHAT_FIELDS, set(kwargs) - ours - OPENAI_CHAT_FIELDS
        assert kwargs["api_base"] != attacker.base
        assert attacker.base not in repr({k: v for k, v in kwargs.items() if k != "messages"})
    assert attacker.seen == []
