"""Hostile and malformed bodies against both APIs: never a 500, never a crash, healthy after."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

PATHS = ["/v1/chat/completions", "/chat/completions", "/v1/messages", "/v1/messages/count_tokens"]
MODELS = ["memproxy/echo", "gpt-4o-mini", "claude-test-1", "", "unknown-model-x", "o1"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["\u0000", "\ud7ff\ue000", "🦜" * 20, "\u202e", "user", "assistant"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
block_types = st.sampled_from(
    ["text", "image", "tool_use", "tool_result", "document", "thinking", "image_url", "weird"]
)
content_blocks = st.fixed_dictionaries(
    {"type": block_types | json_values},
    optional={
        "text": json_values,
        "content": json_values,
        "source": json_values,
        "cache_control": json_values,
        "input": json_values,
        "image_url": json_values,
    },
)
contents = st.text(max_size=60) | st.lists(content_blocks | json_values, max_size=4) | json_values
messages = (
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "system", "tool"]) | json_values,
            "content": contents,
            "tool_calls": json_values,
            "name": json_values,
        },
    )
    | json_values
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(MODELS) | json_values,
        "messages": st.lists(messages, max_size=5) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": json_values,
        "max_tokens": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
        "system": st.text(max_size=30) | st.lists(content_blocks, max_size=3) | json_values,
        "tools": json_values,
        "metadata": json_values,
        "temperature": json_values,
    },
)
raw_bodies = st.binary(max_size=200) | st.sampled_from(
    [b"", b"null", b"[]", b"1e999999", b'{"model": "memproxy/echo"', b"\xff\xfe", b'"str"']
)


def _deep(depth: int) -> bytes:
    return b'{"model": "memproxy/echo", "messages": ' + b"[" * depth + b"]" * depth + b"}"


class ThreadedGateway:
    """The in-process gateway and fake upstream on their own loop, for synchronous Hypothesis."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        fake = await FakeProvider().start()
        config = config_for(fake.base, memory={"backend": "local"})
        try:
            async with running_gateway(config, litellm=False) as gw:
                self.url = gw.url
                self._ready.set()
                await self._stop.wait()
        finally:
            await fake.close()

    def __enter__(self) -> ThreadedGateway:
        self._thread.start()
        assert self._ready.wait(30), "gateway did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def gateway() -> Iterator[tuple[ThreadedGateway, httpx.Client]]:
    with ThreadedGateway() as gw, httpx.Client(base_url=gw.url, timeout=30) as http:
        yield gw, http
        assert http.get("/health").json()["status"] == "ok"


def _check(http: httpx.Client, path: str, content: bytes) -> None:
    resp = http.post(path, content=content, headers={"content-type": "application/json"})
    assert resp.status_code != 500, (path, content[:300], resp.text[:300])
    assert "internal gateway error" not in resp.text
    if resp.status_code >= 400 and resp.headers.get("content-type", "").startswith("application"):
        json.loads(resp.content)  # errors are JSON in the API's shape


FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("path", PATHS)
def test_structured_hostile_bodies(
    gateway: tuple[ThreadedGateway, httpx.Client], path: str
) -> None:
    _, http = gateway

    @FUZZ
    @given(body=bodies)
    def run(body: dict[str, Any]) -> None:
        _check(http, path, json.dumps(body).encode())

    run()


@pytest.mark.parametrize("path", PATHS)
def test_any_json_value_and_raw_bytes(
    gateway: tuple[ThreadedGateway, httpx.Client], path: str
) -> None:
    _, http = gateway

    @FUZZ
    @given(body=json_values.map(lambda v: json.dumps(v).encode()) | raw_bodies)
    def run(body: bytes) -> None:
        _check(http, path, body)

    run()


@pytest.mark.parametrize("path", PATHS)
def test_deep_nesting_and_huge_numbers(
    gateway: tuple[ThreadedGateway, httpx.Client], path: str
) -> None:
    _, http = gateway
    for depth in (100, 1000, 5000):
        _check(http, path, _deep(depth))
    huge = b'{"model": "memproxy/echo", "max_tokens": 1' + b"0" * 400 + b', "messages": []}'
    _check(http, path, huge)
    _check(http, path, b'{"model": "memproxy/echo", "messages": [{"role": "user"}]}')
    for kind in (b'["text"]', b'{"a": 1}'):  # unhashable block types once raised in recall
        odd = b'[{"type": ' + kind + b', "text": "remember the parrot"}]'
        body = b'{"model": "memproxy/echo", "messages": [{"role": "user", "content": ' + odd
        _check(http, path, body + b"}]}")
