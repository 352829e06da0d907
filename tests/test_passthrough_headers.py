"""Passthrough is faithful: the client's end-to-end headers and query string reach the upstream.

Only hop-by-hop headers, credentials memproxy manages and memproxy's own and identity headers
stay behind; memproxy adds itself to `Via`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

CLAUDE_CODE_HEADERS = {
    "User-Agent": "claude-cli/2.1.197 (external, cli)",
    "X-Claude-Code-Session-Id": "3f1c2a9e-session",
    "x-app": "cli",
    "x-stainless-lang": "js",
    "x-stainless-package-version": "0.60.0",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "anthropic-version": "2023-06-01",
    "x-api-key": "sk-ant-caller-key-000111",
}
KEPT_BACK = {
    "x-memproxy-project": "alpha",
    "x-memory-user-id": "dev1",
    "x-pycharm-instance": "pc-1",
    "Cookie": "session=browser-cookie",
    "Connection": "keep-alive, X-Hop",
    "X-Hop": "hop-by-hop by Connection",
    "Proxy-Authorization": "Basic abc",
}


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for(fake.base), litellm=False) as gateway:
        yield gateway


async def test_client_headers_reach_the_upstream_unchanged(
    gw: RunningGateway, fake: FakeProvider
) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with aiohttp.ClientSession() as http:
        headers = {**CLAUDE_CODE_HEADERS, **KEPT_BACK, "Via": "1.1 corp-proxy"}
        async with http.post(gw.url + "/v1/messages?beta=true", json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
        async with http.post(
            gw.url + "/v1/messages/count_tokens?beta=true", json=body, headers=headers
        ) as r:
            assert r.status == 200, await r.text()
    assert [(s.path, s.query) for s in fake.seen] == [
        ("/v1/messages", "beta=true"),
        ("/v1/messages/count_tokens", "beta=true"),
    ]
    for seen in fake.seen:
        for name, value in CLAUDE_CODE_HEADERS.items():
            assert seen.headers.get(name) == value, name
        for name in KEPT_BACK:
            if name != "Connection":
                assert name not in seen.headers, name
        assert seen.headers["Via"] == "1.1 corp-proxy, 1.1 memproxy"


async def test_openai_sdk_headers_pass_and_the_master_key_never_does(fake: FakeProvider) -> None:
    config = config_for(fake.base, server={"master_key": "mk-team-master-key-0123456789"})
    async with running_gateway(config, litellm=False) as gw:
        async with aiohttp.ClientSession() as http:
            headers = {
                "Authorization": "Bearer mk-team-master-key-0123456789",
                "User-Agent": "OpenAI/Python 2.54.0",
                "x-stainless-os": "Linux",
                "session-id": "codex-session-1",
                "OpenAI-Beta": "responses=v1",
            }
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(gw.url + "/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
    seen = fake.seen[0]
    assert seen.headers["User-Agent"] == "OpenAI/Python 2.54.0"
    assert seen.headers["x-stainless-os"] == "Linux"
    assert seen.headers["session-id"] == "codex-session-1"
    assert seen.headers["OpenAI-Beta"] == "responses=v1"
    assert "mk-team-master-key-0123456789" not in str(dict(seen.headers))
