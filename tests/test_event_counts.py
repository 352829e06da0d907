"""Without memory the relay reads only the stream events that count for accounting; the bytes
sent on and the row's usage are the same as when it reads every event."""

from __future__ import annotations

import itertools
from typing import Any
from unittest.mock import MagicMock

import orjson
import pytest

from memproxy_cli.api.openai_chat import OpenAIChat
from memproxy_cli.api.registry import FAMILIES
from memproxy_cli.api.tally import Tally
from memproxy_cli.gateway import relay
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.resources import Resources
from memproxy_cli.gateway.sse import SSEBuffer
from memproxy_cli.store.rows import RequestRow

CHAT = OpenAIChat()
USAGE = {"prompt_tokens": 42, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 3}}


def _event(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunk(**delta: Any) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


EVENTS = [
    _event(_chunk(role="assistant", content="")),
    _event(_chunk(content="Hello \u00e9 world")),
    _event(_chunk(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": "{}"}}])),
    _event({**_chunk(content="x"), "usage": None}),
    _event({**_chunk(content="usage"), "usage": None}),  # a value "usage" beside the null key
    b'data: {"id":"c","choices":[],"usage": {"prompt_tokens":9,"completion_tokens":2}}\n\n',
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"}}],"usage" :null}\n\n',
    _event({**_chunk(content="with usage"), "usage": USAGE}),
    _event({"id": "c", "choices": [], "usage": USAGE}),  # the usage-only chunk
    # The same usage key spelled with escapes: JSON reads it as "usage".
    b'data: {"id":"c","choices":[],"\\u0075sage":{"prompt_tokens":5,"completion_tokens":1}}\n\n',
    b"data: not json\n\n",
    b": a comment\n\n",
    b"event: ping\ndata: {}\n\n",
    b"data: [DONE]\n\n",
]


def _exchange(memory: bool, wants_usage: bool) -> Exchange:
    ex = Exchange(
        request=MagicMock(),
        family=CHAT,
        endpoint="/v1/chat/completions",
        row=RequestRow(request_id="r", started_at=0.0, endpoint="/v1/chat/completions"),
        resources=Resources(),
    )
    ex.client_wants_usage = wants_usage
    ex.recall = MagicMock() if memory else None
    return ex


def _usage(tally: Tally) -> tuple[Any, ...]:
    return (
        tally.prompt_tokens,
        tally.completion_tokens,
        tally.cache_read_tokens,
        tally.cache_write_tokens,
        tally.failure,
    )


@pytest.mark.parametrize("wants_usage", [True, False])
@pytest.mark.parametrize("length", [1, 2, 3])
def test_memory_off_relays_the_same_bytes_and_usage(wants_usage: bool, length: int) -> None:
    for events in itertools.product(EVENTS, repeat=length):
        full, lean = _exchange(True, wants_usage), _exchange(False, wants_usage)
        sent_full = relay._observe(full, SSEBuffer().feed(b"".join(events)))
        sent_lean = relay._observe(lean, SSEBuffer().feed(b"".join(events)))
        assert sent_lean == sent_full, events
        assert _usage(lean.tally) == _usage(full.tally), events
        assert lean.stream_complete == full.stream_complete, events


def test_an_event_that_does_not_count_changes_only_text_and_tool_calls() -> None:
    for raw in EVENTS:
        (data,) = [d for _, d in SSEBuffer().feed(raw)]
        if data is None or CHAT.is_done_marker(data) or CHAT.event_counts(data):
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        for wants_usage in (True, False):
            tally = Tally()
            verdict = CHAT.tally_event(tally, event, wants_usage)
            assert verdict.keep and not verdict.terminal, raw
            assert _usage(tally) == _usage(Tally()), raw


def test_usage_events_count() -> None:
    assert CHAT.event_counts(orjson.dumps({"usage": USAGE}))
    assert CHAT.event_counts(b'{"\\u0075sage":{}}')
    assert not CHAT.event_counts(orjson.dumps(_chunk(content="the usage is low")))
    # A value that looks like the key is read too (a false alarm costs one parse, no more).
    assert CHAT.event_counts(orjson.dumps(_chunk(content="usage")))


def test_openai_s_null_usage_in_every_chunk_does_not_count() -> None:
    """With include_usage OpenAI sends `"usage":null` in each chunk: those are not read."""
    assert not CHAT.event_counts(orjson.dumps({**_chunk(content="hi"), "usage": None}))
    assert CHAT.event_counts(orjson.dumps({**_chunk(content="usage"), "usage": None}))
    assert CHAT.event_counts(orjson.dumps({"choices": [], "usage": USAGE}))
    assert CHAT.event_counts(b'{"choices":[],"usage":null,"x":{"usage":{"prompt_tokens":1}}}')


def test_other_families_read_every_event() -> None:
    for family in FAMILIES:
        if type(family).event_counts is not OpenAIChat.event_counts:
            assert family.event_counts(b"{}")
