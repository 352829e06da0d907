"""Request-derived values that become URL parts: validated or sent exactly, never re-parsed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.supermemory import SupermemoryBackend
from tests.fixtures.fake_supermemory import FakeSupermemory
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

KEY = "sm_" + "urlparts0123456789abcdef"
TRAVERSAL = "../../../v3/admin/purge#"


@pytest.fixture
async def supermemory() -> AsyncIterator[tuple[FakeSupermemory, str]]:
    state = FakeSupermemory(api_key=KEY)
    server = TestServer(state.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield state, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
            "openai",
        ),
        (
            "/v1/messages",
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hello"}],
            },
            "anthropic",
        ),
    ],
)
async def test_traversing_user_id_is_a_400_and_never_reaches_supermemory(
    fake: FakeProvider,
    supermemory: tuple[FakeSupermemory, str],
    path: str,
    body: dict[str, object],
    shape: str,
) -> None:
    state, base = supermemory
    config = config_for(
        fake.base,
        memory={"backend": "supermemory", "supermemory": {"api_key": KEY, "base_url": base}},
    )
    async with (
        running_gateway(config, litellm=False) as gw,
        aiohttp.ClientSession() as http,
        http.post(gw.url + path, json=body, headers={"x-memory-user-id": TRAVERSAL}) as resp,
    ):
        status, answer = resp.status, await resp.json()
        assert gw.memory is not None
        await gw.memory.drain(10)
    assert status == 400
    if shape == "openai":
        assert answer["error"]["type"] == "invalid_request_error"
        assert answer["error"]["code"] == "invalid_user_id"
    else:
        assert answer["type"] == "error"
        assert answer["error"]["type"] == "invalid_request_error"
    assert "x-memory-user-id" in str(answer)
    assert state.requests == []
    assert fake.seen == []


@pytest.mark.parametrize("user", ["alice", "alice@example.com", "bob+ci", "svc_1.2-x"])
async def test_ordinary_user_ids_keep_their_own_namespace(
    fake: FakeProvider, supermemory: tuple[FakeSupermemory, str], user: str
) -> None:
    state, base = supermemory
    config = config_for(
        fake.base,
        memory={
            "backend": "supermemory",
            "supermemory": {"api_key": KEY, "base_url": base},
            "recall_timeout_ms": 30000,  # a loaded machine must not turn the search into a skip
        },
    )
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    async with (
        running_gateway(config, litellm=False) as gw,
        aiohttp.ClientSession() as http,
        http.post(
            gw.url + "/v1/chat/completions", json=body, headers={"x-memory-user-id": user}
        ) as resp,
    ):
        assert resp.status == 200
        assert gw.memory is not None
        await gw.memory.drain(10)
    paths = {r.path for r in state.requests}
    # The search, the look for an identical turn stored before (by its id), the store.
    [refresh] = [p for p in paths if p.startswith(f"/ns/user:{user}/document/")]
    assert re.fullmatch(r"mp-[0-9a-f]{24}", refresh.rsplit("/", 1)[1]), refresh
    assert paths == {f"/ns/user:{user}/search", f"/ns/user:{user}/document", refresh}


@pytest.mark.parametrize("scope", ["..", ".", "user:../../v3/admin", "a/b", "a#b", "a?b", "a%2e"])
async def test_backend_refuses_a_scope_that_is_not_a_safe_path_segment(
    supermemory: tuple[FakeSupermemory, str], scope: str
) -> None:
    state, base = supermemory
    backend = SupermemoryBackend(api_key=KEY, base_url=base)
    try:
        with pytest.raises(ValueError, match="namespace"):
            await backend.search(scope, "hello", 3)
        with pytest.raises(ValueError, match="namespace"):
            await backend.add(scope, Turn("hello", "hi"))
        with pytest.raises(ValueError, match="namespace"):
            await backend.list(scope)
        with pytest.raises(ValueError, match="namespace"):
            await backend.forget(scope, "doc1")
    finally:
        await backend.close()
    assert state.requests == []


async def test_query_string_reaches_the_upstream_exactly(fake: FakeProvider) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    async with (
        running_gateway(config_for(fake.base), litellm=False) as gw,
        aiohttp.ClientSession() as http,
        http.post(gw.url + "/v1/chat/completions?x=%23y%26z%3D1", json=body) as resp,
    ):
        assert resp.status == 200
    [seen] = fake.seen
    assert seen.query == "x=#y%26z%3D1"
