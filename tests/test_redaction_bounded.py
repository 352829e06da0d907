"""Redaction sees only what is stored (clipped first) and never runs on the event loop."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import aiohttp
import pytest

from memproxy_cli.memory import redact as redact_module
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.redact import CLIP_MARGIN
from memproxy_cli.memory.turn_text import MAX_PART_CHARS
from memproxy_cli.paths import get_paths
from tests.fixtures import replay
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

SECRET = "sk-proj-" + "Q" * 40
BIG = 20 * 1024 * 1024


class RedactSpy:
    """Every call of `redact`, wherever it was imported: (thread id, length of its input)."""

    def __init__(self, original: Callable[[str], str]) -> None:
        self.original = original
        self.calls: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self._lock:
            self.calls.append((threading.get_ident(), len(text)))
        return self.original(text)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedactSpy]:
    original = redact_module.redact
    recorder = RedactSpy(original)
    for module in list(sys.modules.values()):
        if getattr(module, "redact", None) is original:
            monkeypatch.setattr(module, "redact", recorder)
    yield recorder


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_20_mb_message_is_clipped_before_redaction_and_redacted_off_the_loop(
    spy: RedactSpy, path: str
) -> None:
    # A real upstream's answer: the echo model's turns are never stored.
    wire = replay.wire_for(path)
    upstream = replay.ReplayUpstream([[wire.final("Noted.")]], wire, max_body=64 * 1024 * 1024)
    await upstream.start()
    config = config_for(
        upstream.base,
        memory={"backend": "local"},
        server={"max_body_bytes": 32 * 1024 * 1024},
    )
    text = f"remember this key {SECRET} " + "filler words " * (BIG // 13)
    body: dict[str, object] = {
        "model": "gpt-4o-mini" if "chat" in path else "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
    }
    loop_thread = threading.get_ident()
    try:
        async with (
            running_gateway(config, litellm=False) as gw,
            aiohttp.ClientSession() as http,
            http.post(gw.url + path, json=body) as resp,
        ):
            assert resp.status == 200
            await resp.read()
            assert gw.memory is not None
            await gw.memory.drain(60)
            assert gw.memory.failed_stores == 0
    finally:
        await upstream.close()
    assert spy.calls, "the stored turn was never redacted"
    assert max(length for _, length in spy.calls) <= MAX_PART_CHARS + CLIP_MARGIN
    assert all(thread != loop_thread for thread, _ in spy.calls)
    store = LocalMemoryBackend(get_paths().memory_db)
    try:
        [memory] = store.list_sync("user:default")
    finally:
        store.close_sync()
    assert SECRET not in memory.text and "[REDACTED:openai]" in memory.text
    assert len(memory.text) < 3 * MAX_PART_CHARS


def test_a_secret_cut_by_the_clip_is_still_redacted_whole() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\n" + "A" * 3000 + "\n-----END PRIVATE KEY-----"
    text = "x" * (MAX_PART_CHARS - 10) + " " + pem + " tail"
    kept = redact_module.redact_prefix(text, MAX_PART_CHARS)[:MAX_PART_CHARS]
    assert "AAAA" not in kept
    assert "[REDACTED:private_key]" in redact_module.redact_prefix(text, MAX_PART_CHARS)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages/count_tokens"])
async def test_an_upstream_error_body_is_scrubbed_off_the_loop(
    spy: RedactSpy, fake: FakeProvider, path: str
) -> None:
    fake.behaviour.fail_status = 400
    fake.behaviour.fail_body = b'{"error": {"message": "bad api_key=' + SECRET.encode() + b'"}}'
    body = {
        "model": "claude-sonnet-4-5" if "count" in path else "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
    }
    loop_thread = threading.get_ident()
    async with (
        running_gateway(config_for(fake.base), litellm=False) as gw,
        aiohttp.ClientSession() as http,
        http.post(gw.url + path, json=body) as resp,
    ):
        assert resp.status == 400
        answer = await resp.text()
    assert SECRET not in answer and "[REDACTED" in answer
    assert spy.calls
    assert all(thread != loop_thread for thread, _ in spy.calls)
