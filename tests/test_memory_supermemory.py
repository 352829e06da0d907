"""The Supermemory backend through the real SDK against a fake server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp.test_utils import TestServer

from memproxy_cli.config import parse_config
from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.service import MemoryService
from memproxy_cli.memory.supermemory import SupermemoryBackend
from memproxy_cli.memory.turn_text import dedup_key
from memproxy_cli.paths import get_paths
from tests.fixtures.fake_supermemory import COOKIE_NAME, FakeSupermemory

KEY = "sm_" + "test0123456789abcdefghij"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeSupermemory, str]]:
    state = FakeSupermemory(api_key=KEY)
    server = TestServer(state.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield state, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def backend(fake: tuple[FakeSupermemory, str]) -> AsyncIterator[SupermemoryBackend]:
    sm = SupermemoryBackend(api_key=KEY, base_url=fake[1])
    yield sm
    await sm.close()


async def test_add_search_list_forget_export_round_trip(
    fake: tuple[FakeSupermemory, str], backend: SupermemoryBackend
) -> None:
    state, _ = fake
    first = await backend.add("proj-a", Turn("we use PostgreSQL 16", "Noted.", model="m1"))
    second = await backend.add("proj-a", Turn("the frontend is Svelte", "Good."))
    await backend.add("proj-b", Turn("proj b also uses PostgreSQL", "ok"))
    assert first and second and first != second

    found = await backend.search("proj-a", "which postgresql version", 5)
    assert [m.id for m in found] == [first]
    assert found[0].text == "User: we use PostgreSQL 16\nAssistant: Noted."
    assert found[0].scope == "proj-a" and found[0].created_at > 0
    assert found[0].metadata == {"source": "memproxy", "model": "m1"}

    assert {m.id for m in await backend.list("proj-a")} == {first, second}
    assert await backend.forget("proj-a", first) is True
    assert await backend.forget("proj-a", first) is False
    assert [m.id for m in await backend.export("proj-a")] == [second]
    assert [m.scope for m in await backend.export("proj-b")] == ["proj-b"]

    add = next(r for r in state.requests if r.method == "POST" and r.path.endswith("/document"))
    assert add.path == "/ns/proj-a/document"
    assert add.authorization == f"Bearer {KEY}"
    assert add.body["id"] == first
    search = next(r for r in state.requests if r.path.endswith("/search"))
    assert search.body["query"] == "which postgresql version" and search.body["limit"] == 5


async def test_stored_content_is_redacted(
    fake: tuple[FakeSupermemory, str], backend: SupermemoryBackend
) -> None:
    secret = "sk-proj-" + "Z" * 40
    await backend.add("p", Turn(f"key {secret}", "ok"))
    [doc] = fake[0].documents["p"].values()
    assert secret not in doc["content"] and "[REDACTED:openai]" in doc["content"]


async def test_one_persistent_client_sends_cookies_back(
    fake: tuple[FakeSupermemory, str], backend: SupermemoryBackend
) -> None:
    await backend.search("p", "anything", 3)
    await backend.search("p", "anything", 3)
    first, second = fake[0].requests[-2:]
    assert first.cookie is None
    assert second.cookie == f"{COOKIE_NAME}=edge-token"


async def test_given_http_client_is_used_and_left_open(fake: tuple[FakeSupermemory, str]) -> None:
    async with httpx.AsyncClient() as client:
        sm = SupermemoryBackend(api_key=KEY, base_url=fake[1], http_client=client)
        await sm.search("p", "hello", 1)
        await sm.close()
        assert not client.is_closed
        assert client.cookies.get(COOKIE_NAME) == "edge-token"


async def test_errors_surface_as_exceptions(fake: tuple[FakeSupermemory, str]) -> None:
    bad = SupermemoryBackend(api_key="sm_wrong_key_000000000000", base_url=fake[1])
    with pytest.raises(Exception, match=r"401|nauthorized"):
        await bad.search("p", "hello", 1)
    await bad.close()
    missing = SupermemoryBackend(api_key=None, base_url=fake[1])
    with pytest.raises(RuntimeError, match="API key"):
        await missing.search("p", "hello", 1)


async def test_empty_query_makes_no_call(
    fake: tuple[FakeSupermemory, str], backend: SupermemoryBackend
) -> None:
    assert await backend.search("p", "  ", 5) == []
    assert fake[0].requests == []


async def test_an_identical_turn_is_stored_once_and_its_recency_refreshed(
    fake: tuple[FakeSupermemory, str], backend: SupermemoryBackend
) -> None:
    state, _ = fake
    first = Turn("We deploy with Helm 3.", "Noted.", client="claude-cli")
    first.dedup_key = dedup_key(first.user, first.assistant)
    memory_id = await backend.add("p", first)
    assert memory_id == f"mp-{first.dedup_key}"
    [doc] = state.documents["p"].values()
    doc["createdAt"] = doc["updatedAt"] = "2026-01-01T00:00:00Z"  # stored long ago
    again = Turn("we  deploy with HELM 3.", "noted.", client="aider")
    again.dedup_key = dedup_key(again.user, again.assistant)
    assert await backend.add("p", again) == memory_id
    [memory] = await backend.list("p")
    assert (
        memory.id == memory_id and memory.text == "User: We deploy with Helm 3.\nAssistant: Noted."
    )
    assert memory.created_at > datetime(2026, 6, 1, tzinfo=UTC).timestamp()  # refreshed
    [found] = await backend.search("p", "helm", 5)
    assert found.id == memory_id and found.created_at == memory.created_at
    posts = [r for r in state.requests if r.method == "POST" and r.path == "/ns/p/document"]
    patches = [r for r in state.requests if r.method == "PATCH"]
    assert len(posts) == 1  # adding again would have added the content to the document again
    assert [r.path for r in patches] == [f"/ns/p/document/{memory_id}"] * 2
    assert "content" not in patches[1].body  # metadata only: nothing reprocessed
    assert patches[1].body["metadata"]["client"] == "aider"


async def test_turns_without_a_dedup_key_are_each_stored(
    fake: tuple[FakeSupermemory, str], backend: SupermemoryBackend
) -> None:
    a = await backend.add("p", Turn("We deploy with Helm 3.", "Noted."))
    b = await backend.add("p", Turn("We deploy with Helm 3.", "Noted."))
    assert a != b and len(fake[0].documents["p"]) == 2
    assert not [r for r in fake[0].requests if r.method == "PATCH"]


async def test_the_service_stores_a_repeated_turn_once_in_supermemory(
    fake: tuple[FakeSupermemory, str], backend: SupermemoryBackend
) -> None:
    config = parse_config("memory: {backend: supermemory}\n", "c.yaml")
    service = MemoryService(config, get_paths(), backend=backend)
    try:
        service.remember(
            "p", None, "Our queue is RabbitMQ 3.13", "Noted: RabbitMQ 3.13.", "m", "r1"
        )
        await service.drain(30)
        service.remember(
            "p", None, "our queue is  rabbitmq 3.13", "noted: rabbitmq 3.13.", "m", "r2"
        )
        await service.drain(30)
    finally:
        await service.close()
    [doc] = fake[0].documents["p"].values()
    assert doc["content"] == "User: Our queue is RabbitMQ 3.13\nAssistant: Noted: RabbitMQ 3.13."
    assert doc["metadata"]["request_id"] == "r2"  # the repeat touched it
