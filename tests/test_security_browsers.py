"""A web page is no tool: cross-site requests and bodies not declared JSON are refused."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "the vault code is 4411"}]}
CLAUDE = {**CHAT, "model": "claude-test-1", "max_tokens": 10}
PATHS = [("/v1/chat/completions", CHAT), ("/v1/messages", CLAUDE)]


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    config = config_for(fake.base, memory={"backend": "local"})
    async with running_gateway(config, litellm=False) as gateway:
        yield gateway


async def _post(
    gw: RunningGateway, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, Any]:
    async with aiohttp.ClientSession(skip_auto_headers=("Content-Type",)) as http:
        async with http.post(gw.url + path, data=orjson.dumps(body), headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


async def _stored(gw: RunningGateway) -> list[Any]:
    memory = gw.memory
    assert memory is not None
    await memory.drain(10)
    backend = memory.backend_for(gw.state.config.memory)
    assert backend is not None
    return list(await backend.list("user:default"))


def _assert_shape(path: str, body: Any, kind: str) -> None:
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == kind
    else:
        assert body["error"]["type"] == kind and body["error"]["code"]


@pytest.mark.parametrize(("path", "body"), PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain", "Origin": "https://evil.example"},
        {"Content-Type": "application/json", "Origin": "https://evil.example"},
        {"Content-Type": "text/plain", "Origin": "null"},
        {"Content-Type": "text/plain", "Origin": "http://127.0.0.1.evil.example:8764"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_cross_site_request_is_403_and_nothing_happens(
    gw: RunningGateway,
    fake: FakeProvider,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    status, reply = await _post(gw, path, body, headers)
    assert status == 403
    _assert_shape(path, reply, "permission_error")
    assert "cross-" in str(reply)
    assert fake.seen == []
    assert await _stored(gw) == []


@pytest.mark.parametrize(("path", "body"), PATHS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_body_not_declared_json_is_415_and_nothing_happens(
    gw: RunningGateway,
    fake: FakeProvider,
    path: str,
    body: dict[str, Any],
    content_type: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, reply = await _post(gw, path, body, headers)
    assert status == 415
    _assert_shape(path, reply, "invalid_request_error")
    assert "application/json" in str(reply)
    assert fake.seen == []
    assert await _stored(gw) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "Application/JSON"},
        {"Content-Type": "application/vnd.memproxy+json"},
        {"Content-Type": "application/json", "Origin": "http://localhost:3000"},
        {"Content-Type": "application/json", "Origin": "http://[::1]:8080"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"},
    ],
)
async def test_tools_and_loopback_pages_are_served(
    gw: RunningGateway, fake: FakeProvider, headers: dict[str, str]
) -> None:
    status, reply = await _post(gw, "/v1/chat/completions", CHAT, headers)
    assert status == 200, reply
    assert len(fake.seen) == 1
    assert len(await _stored(gw)) == 1  # the check above would see a stored turn


async def test_get_needs_no_content_type_but_no_foreign_origin(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.url + "/v1/models") as resp:
            assert resp.status == 200
        async with http.get(
            gw.url + "/v1/models", headers={"Origin": "https://evil.example"}
        ) as resp:
            assert resp.status == 403


async def test_team_listener_takes_json_only_but_no_origin_rule(fake: FakeProvider) -> None:
    config = config_for(fake.base, server={"host": "0.0.0.0", "master_key": "mk-" + "t" * 30})
    auth = {"Authorization": "Bearer mk-" + "t" * 30}
    async with running_gateway(config, litellm=False, store=False) as gw:
        status, _ = await _post(
            gw, "/v1/chat/completions", CHAT, {**auth, "Content-Type": "text/plain"}
        )
        assert status == 415
        headers = {**auth, "Content-Type": "application/json", "Origin": "https://team.example"}
        status, _ = await _post(gw, "/v1/chat/completions", CHAT, headers)
        assert status == 200


ROOT = Path(__file__).resolve().parents[1]
_CURL = re.compile(r"^curl -s http://127\.0\.0\.1:8764(?P<rest>.*?)(?=\n```)", re.M | re.S)


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
async def test_the_documented_curl_example_works(gw: RunningGateway, page: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    text = (ROOT / page).read_text(encoding="utf-8")
    match = _CURL.search(text)
    assert match is not None, f"{page} lost its curl example"
    command = "curl -s " + gw.url + match.group("rest").replace("\\\n", " ")
    proc = await asyncio.create_subprocess_exec(
        *shlex.split(command), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    reply = orjson.loads(out)
    assert reply["object"] == "chat.completion", reply
