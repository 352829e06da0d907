"""Which key goes where: a configured key or none, the daemon's env key only to the provider's
default base, and the gateway's own credential (master key, local token) never upstream."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.fixtures.fake_upstreams import FakeProvider, Seen
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

MESSAGES = [{"role": "user", "content": "hi"}]
DAEMON_OPENAI = "sk-daemon-openai-key-00000001"
DAEMON_ANTHROPIC = "sk-ant-daemon-key-0000000001"
CALLER = "sk-caller-own-key-000000001"
MASTER = "mk-" + "team-master-key-" * 2


@pytest.fixture(autouse=True)
def daemon_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", DAEMON_OPENAI)
    monkeypatch.setenv("ANTHROPIC_API_KEY", DAEMON_ANTHROPIC)
    monkeypatch.delenv("MEMPROXY_TEST_UNSET_KEY", raising=False)


def _entries(base: str, **params: Any) -> list[dict[str, Any]]:
    return [
        {"model_name": "custom-gpt", "litellm_params": {"model": "openai/gpt-x", **params}},
        {
            "model_name": "custom-claude",
            "litellm_params": {"model": "anthropic/claude-x", **params},
        },
    ]


async def _call(
    gw: RunningGateway, path: str, model: str, headers: dict[str, str] | None = None
) -> int:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 5}
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.url + path, json=body, headers=headers or {}) as resp:
            await resp.read()
            return resp.status


def _credentials(seen: Seen) -> dict[str, str]:
    return {
        k.lower(): v for k, v in seen.headers.items() if k.lower() in ("authorization", "x-api-key")
    }


async def test_unset_configured_key_sends_no_key_at_all(fake: FakeProvider) -> None:
    entries = _entries(fake.base, api_base=fake.base, api_key="os.environ/MEMPROXY_TEST_UNSET_KEY")
    async with running_gateway(config_for(fake.base, model_list=entries), litellm=False) as gw:
        caller = {"Authorization": f"Bearer {CALLER}"}
        assert await _call(gw, "/v1/chat/completions", "custom-gpt", caller) == 200
        assert await _call(gw, "/v1/messages", "custom-claude", {"x-api-key": CALLER}) == 200
        assert await _call(gw, "/v1/chat/completions", "custom-gpt") == 200
    assert len(fake.seen) == 3
    for seen in fake.seen:
        assert _credentials(seen) == {}


async def test_env_key_never_goes_to_a_custom_api_base(fake: FakeProvider) -> None:
    entries = _entries(fake.base, api_base=fake.base)  # e.g. a local server that needs no key
    async with running_gateway(config_for(fake.base, model_list=entries), litellm=False) as gw:
        assert await _call(gw, "/v1/chat/completions", "custom-gpt") == 200
        assert await _call(gw, "/v1/messages", "custom-claude") == 200
        # The caller's own key still goes where the caller sent it.
        caller = {"Authorization": f"Bearer {CALLER}"}
        assert await _call(gw, "/v1/chat/completions", "custom-gpt", caller) == 200
    no_key, no_key_ant, callers = fake.seen
    assert _credentials(no_key) == {} and _credentials(no_key_ant) == {}
    assert callers.headers["authorization"] == f"Bearer {CALLER}"


async def test_env_key_goes_to_the_providers_default_base(fake: FakeProvider) -> None:
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        assert await _call(gw, "/v1/chat/completions", "gpt-4o-mini") == 200
        assert await _call(gw, "/v1/messages", "claude-test-1") == 200
    openai_call, anthropic_call = fake.seen
    assert openai_call.headers["authorization"] == f"Bearer {DAEMON_OPENAI}"
    assert anthropic_call.headers["x-api-key"] == DAEMON_ANTHROPIC


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {MASTER}"},  # Claude Code with ANTHROPIC_AUTH_TOKEN
        {"x-api-key": MASTER},
    ],
)
async def test_master_key_is_never_forwarded(fake: FakeProvider, headers: dict[str, str]) -> None:
    config = config_for(fake.base, server={"master_key": MASTER})
    async with running_gateway(config, litellm=False, store=False) as gw:
        assert await _call(gw, "/v1/messages", "claude-test-1", headers) == 200
        assert await _call(gw, "/v1/chat/completions", "gpt-4o-mini", headers) == 200
        assert await _call(gw, "/v1/messages/count_tokens", "claude-test-1", headers) == 200
    messages, chat, count = fake.seen
    assert _credentials(messages) == {"x-api-key": DAEMON_ANTHROPIC}
    assert _credentials(chat) == {"authorization": f"Bearer {DAEMON_OPENAI}"}
    assert _credentials(count) == {"x-api-key": DAEMON_ANTHROPIC}


async def test_master_key_with_no_daemon_key_sends_nothing(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    config = config_for(fake.base, server={"master_key": MASTER})
    async with running_gateway(config, litellm=False, store=False) as gw:
        headers = {"Authorization": f"Bearer {MASTER}"}
        assert await _call(gw, "/v1/messages", "claude-test-1", headers) == 200
    (seen,) = fake.seen
    assert _credentials(seen) == {}
    assert MASTER not in str(dict(seen.headers))


async def test_litellm_gets_no_env_key_for_an_unset_configured_key(fake: FakeProvider) -> None:
    entries = [
        {
            "model_name": "gpt-via-anthropic",
            "litellm_params": {
                "model": "openai/gpt-test",
                "api_base": fake.base + "/v1",
                "api_key": "os.environ/MEMPROXY_TEST_UNSET_KEY",
            },
        }
    ]
    async with running_gateway(config_for(fake.base, model_list=entries)) as gw:
        headers = {"x-api-key": CALLER}
        assert await _call(gw, "/v1/messages", "gpt-via-anthropic", headers) == 200
    (seen,) = fake.seen
    sent = str(dict(seen.headers))
    assert DAEMON_OPENAI not in sent and CALLER not in sent


async def test_litellm_never_gets_the_master_key(fake: FakeProvider) -> None:
    entries = [
        {
            "model_name": "gpt-via-anthropic",
            "litellm_params": {"model": "openai/gpt-test", "api_base": fake.base + "/v1"},
        }
    ]
    config = config_for(fake.base, model_list=entries, server={"master_key": MASTER})
    async with running_gateway(config) as gw:
        for headers in ({"Authorization": f"Bearer {MASTER}"}, {"x-api-key": MASTER}):
            assert await _call(gw, "/v1/messages", "gpt-via-anthropic", headers) == 200
    assert len(fake.seen) == 2
    for seen in fake.seen:
        sent = str(dict(seen.headers))
        assert MASTER not in sent and DAEMON_OPENAI not in sent
