"""Other local users: the local token, project listeners that answer for their own project only,
and a default policy that requests without a project cannot step around."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from memproxy_cli.local_token import read_local_token, token_path
from memproxy_cli.paths import get_paths
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "deploy at 5pm"}]}
CLAUDE = {**CHAT, "model": "claude-test-1", "max_tokens": 10}
ECHO = {"model": "memproxy/echo", "messages": [{"role": "user", "content": "what do you know"}]}
OPENAI_ENV_KEY = "sk-daemon-openai-0000000001"
ANTHROPIC_ENV_KEY = "sk-ant-daemon-000000000001"


async def _post(
    gw: RunningGateway, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.url + path, json=body, headers=headers or {}) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def tokened(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningGateway]:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_ENV_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_ENV_KEY)
    config = config_for(fake.base, server={"local_token": True}, memory={"backend": "local"})
    async with running_gateway(config, litellm=False) as gateway:
        yield gateway


def test_token_file_is_private_and_stable(tokened: RunningGateway) -> None:
    paths = get_paths()
    path = token_path(paths)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = read_local_token(paths)
    assert token is not None and len(token) >= 40
    assert tokened.state.local_token == token
    tokened.state.apply_config(tokened.state.config)  # a reload keeps the token tools hold
    assert read_local_token(paths) == token


def test_turning_the_token_off_removes_the_file(tokened: RunningGateway) -> None:
    tokened.state.apply_config(config_for("http://127.0.0.1:9"))
    assert tokened.state.local_token is None
    assert not token_path(get_paths()).exists()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer mpt-wrong"}, {"x-api-key": "sk-someone-elses-key-0001"}],
)
async def test_without_the_token_nothing_is_served(
    tokened: RunningGateway, fake: FakeProvider, headers: dict[str, str]
) -> None:
    status, body = await _post(tokened, "/v1/chat/completions", CHAT, headers)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert "local token" in body["error"]["message"]
    status, body = await _post(tokened, "/v1/messages", CLAUDE, headers)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = await _post(tokened, "/v1/chat/completions", ECHO, headers)
    assert status == 401  # nor memories through the echo model
    assert fake.seen == []
    async with aiohttp.ClientSession() as http:
        async with http.get(tokened.url + "/health") as resp:
            assert resp.status == 200


async def test_token_as_the_key_is_never_forwarded(
    tokened: RunningGateway, fake: FakeProvider
) -> None:
    token = tokened.state.local_token
    assert token
    status, _ = await _post(
        tokened, "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    status, _ = await _post(tokened, "/v1/messages", CLAUDE, {"x-api-key": token})
    assert status == 200
    status, _ = await _post(tokened, "/v1/messages", CLAUDE, {"Authorization": f"Bearer {token}"})
    assert status == 200
    assert (await _post(tokened, "/v1/chat/completions", ECHO, {"x-goog-api-key": token}))[0] == 200
    openai_call, anthropic_call, oauth_style = fake.seen
    assert openai_call.headers["authorization"] == f"Bearer {OPENAI_ENV_KEY}"
    assert anthropic_call.headers["x-api-key"] == ANTHROPIC_ENV_KEY
    assert oauth_style.headers["x-api-key"] == ANTHROPIC_ENV_KEY
    assert "authorization" not in oauth_style.headers
    for seen in fake.seen:
        assert token not in str(dict(seen.headers)) and token.encode() not in seen.raw


async def test_token_header_keeps_the_callers_own_key(
    tokened: RunningGateway, fake: FakeProvider
) -> None:
    token = tokened.state.local_token
    assert token
    headers = {"x-memproxy-token": token, "Authorization": "Bearer sk-ant-oat-callers-own-01"}
    status, _ = await _post(tokened, "/v1/messages", CLAUDE, headers)
    assert status == 200
    (seen,) = fake.seen
    assert seen.headers["authorization"] == "Bearer sk-ant-oat-callers-own-01"
    assert "x-memproxy-token" not in seen.headers


async def test_master_key_or_token_on_loopback(fake: FakeProvider) -> None:
    master = "mk-" + "q7" * 15
    config = config_for(fake.base, server={"local_token": True, "master_key": master})
    async with running_gateway(config, litellm=False, store=False) as gw:
        token = gw.state.local_token
        for key in (master, token):
            status, _ = await _post(gw, "/v1/chat/completions", ECHO, {"x-api-key": str(key)})
            assert status == 200
        status, _ = await _post(gw, "/v1/chat/completions", ECHO, {"x-api-key": "nope-nope"})
        assert status == 401


# --- project listeners ---


@pytest.fixture
async def listener(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    config = config_for(fake.base, memory={"backend": "local"})
    async with running_gateway(config, litellm=False) as gateway:
        gateway.state.port_projects[gateway.server.port] = "alpha"  # a project listener
        yield gateway


async def test_project_listener_refuses_another_project(
    listener: RunningGateway, fake: FakeProvider
) -> None:
    status, _ = await _post(listener, "/v1/chat/completions", CHAT)  # alpha's turn is stored
    assert status == 200
    assert listener.memory is not None
    await listener.memory.drain(10)
    for path, body in (("/v1/chat/completions", ECHO), ("/v1/messages", {**ECHO, "max_tokens": 5})):
        status, reply = await _post(listener, path, body, {"x-memproxy-project": "beta"})
        assert status == 403
        assert "project_mismatch" in str(reply) or "serves project 'alpha' only" in str(reply)
        assert "alpha" not in str(reply.get("choices", ""))
    status, _ = await _post(listener, "/v1/chat/completions", CHAT, {"x-memproxy-project": "beta"})
    assert status == 403
    assert len(fake.seen) == 1
    status, reply = await _post(
        listener, "/v1/chat/completions", ECHO, {"x-memproxy-project": "alpha"}
    )
    assert status == 200


# --- the default policy ---


async def test_requests_without_a_project_fall_under_the_default_policy(
    fake: FakeProvider,
) -> None:
    config = config_for(
        fake.base,
        projects={"*": {"allowed_models": ["memproxy/echo"]}, "paid": {"allowed_models": None}},
    )
    async with running_gateway(config, litellm=False, store=False) as gw:
        status, body = await _post(gw, "/v1/chat/completions", CHAT)
        assert status == 403 and body["error"]["code"] == "model_not_allowed"
        assert "requests without a project" in body["error"]["message"]
        status, _ = await _post(gw, "/v1/chat/completions", CHAT, {"x-memproxy-project": "made-up"})
        assert status == 403  # a project without its own entry gets the default too
        status, _ = await _post(gw, "/v1/messages", CLAUDE)
        assert status == 403
        assert fake.seen == []
        assert (await _post(gw, "/v1/chat/completions", ECHO))[0] == 200
        status, _ = await _post(gw, "/v1/chat/completions", CHAT, {"x-memproxy-project": "paid"})
        assert status == 200
        assert len(fake.seen) == 1


async def test_default_budget_is_shared_by_requests_outside_budgeted_projects(
    fake: FakeProvider,
) -> None:
    config = config_for(
        fake.base,
        budgets={"*": {"daily_usd": 0.001}, "paid": {"daily_usd": 100}},
        pricing={"gpt-4o-mini": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}},
    )
    async with running_gateway(config, litellm=False) as gw:
        assert (await _post(gw, "/v1/chat/completions", CHAT))[0] == 200  # costs 0.018
        status, body = await _post(gw, "/v1/chat/completions", CHAT)
        assert status == 429 and body["error"]["code"] == "budget_exceeded"
        assert "default daily budget" in body["error"]["message"]
        status, _ = await _post(gw, "/v1/chat/completions", CHAT, {"x-memproxy-project": "new-one"})
        assert status == 429  # a fresh project name is no fresh budget
        status, _ = await _post(gw, "/v1/chat/completions", CHAT, {"x-memproxy-project": "paid"})
        assert status == 200
        assert len(fake.seen) == 2
