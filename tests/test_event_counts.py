"""Without memory the relay reads only the stream events that count for accounting; the bytes
sent on and the row's usage are the same as when it reads every event."""

from __future__ import annotations

import itertools
import random
from typing import Any
from unittest.mock import MagicMock

import orjson
import pytest

from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.family import ApiFamily
from memproxy_cli.api.openai_chat import OpenAIChat
from memproxy_cli.api.registry import FAMILIES
from memproxy_cli.api.tally import Tally
from memproxy_cli.gateway import relay
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.resources import Resources
from memproxy_cli.gateway.sse import SSEBuffer
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.upstream.bounds import UpstreamTooLarge

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


def _exchange(memory: bool, wants_usage: bool, family: ApiFamily = CHAT) -> Exchange:
    ex = Exchange(
        request=MagicMock(),
        family=family,
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


def _cuts(data: bytes, rng: random.Random) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 4))))
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def test_a_run_is_the_events_feed_finds_joined() -> None:
    """`feed_run` frames exactly as `feed` does: LF and CRLF separators, runs of newlines,
    events cut anywhere across chunks."""
    pieces = [b"data: a", b"\n", b"\n\n", b"\r\n", b"\r\n\r\n", b"event: x", b": c", b"\r", b"z"]
    rng = random.Random(11)
    for _ in range(2000):
        stream = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        whole, runs = SSEBuffer(), SSEBuffer()
        for chunk in _cuts(stream, rng):
            assert runs.feed_run(chunk) == b"".join(raw for raw, _ in whole.feed(chunk)), stream
        assert runs.rest() == whole.rest(), stream


def test_a_too_large_pending_event_is_refused_by_runs_too() -> None:
    with pytest.raises(UpstreamTooLarge):
        SSEBuffer(max_event_bytes=8).feed(b"data: 1\n\ndata: 123456789")
    with pytest.raises(UpstreamTooLarge):
        SSEBuffer(max_event_bytes=8).feed_run(b"data: 1\n\ndata: 123456789")


def _anthropic(kind: str, **fields: Any) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"
    )


ANTHROPIC_EVENTS = [
    _anthropic("message_start", message={"usage": {"input_tokens": 11, "output_tokens": 1}}),
    _anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    _anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "hi"}),
    _anthropic("content_block_delta", delta={"type": "text_delta", "text": '"message_stop"'}),
    _anthropic("ping"),
    _anthropic("content_block_stop", index=0),
    _anthropic("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 9}),
    b'event: message_delta\ndata: {"type":"\\u006dessage_delta","usage":{"output_tokens":4}}\n\n',
    _anthropic("message_stop"),
    b'event: x\r\ndata: {"type":"ping"}\r\n\r\n',
]
CRLF_CHAT = b'data: {"id":"c","choices":[{"index":0,"delta":{}}],"usage":null}\r\n\r\n'
RUN_CASES = [(CHAT, [*EVENTS, CRLF_CHAT]), (ANTHROPIC_MESSAGES, ANTHROPIC_EVENTS)]


@pytest.mark.parametrize(("family", "events_of"), RUN_CASES)
@pytest.mark.parametrize("wants_usage", [True, False])
def test_runs_relay_the_same_bytes_and_usage(
    family: ApiFamily, events_of: list[bytes], wants_usage: bool
) -> None:
    """Memory off: the relay's run step sends what reading every event sends, counts the same
    usage and sees the same end, however the stream is cut into chunks."""
    rng = random.Random(5)
    for events in itertools.product(events_of, repeat=3):
        stream = b"".join(events)
        for _ in range(2):
            full = _exchange(True, wants_usage, family)
            lean = _exchange(False, wants_usage, family)
            full_buffer, lean_buffer = SSEBuffer(), SSEBuffer()
            sent_full, sent_lean = [], []
            for chunk in _cuts(stream, rng):
                sent_full.append(relay._observe(full, full_buffer.feed(chunk)))
                sent_lean.append(relay._run(lean, lean_buffer, chunk))
            assert b"".join(sent_lean) == b"".join(sent_full), events
            assert sent_lean == sent_full, events  # the same bytes at the same moments
            assert _usage(lean.tally) == _usage(full.tally), events
            assert lean.stream_complete == full.stream_complete, events


def test_no_event_before_the_first_count_counts() -> None:
    for events in itertools.product(EVENTS, repeat=3):
        run = b"".join(events)
        first, end = CHAT.first_count(run), 0
        assert 0 <= first <= len(run)
        for raw, data in SSEBuffer().feed(run):
            end += len(raw)
            if end <= first and data is not None:
                assert not CHAT.is_done_marker(data) and not CHAT.event_counts(data), events


def test_no_anthropic_event_before_the_first_count_changes_the_row() -> None:
    """Before `first_count`, an event changes only text and tool calls, and is no end."""
    for events in itertools.product(ANTHROPIC_EVENTS, repeat=3):
        run = b"".join(events)
        first, end = ANTHROPIC_MESSAGES.first_count(run), 0
        for raw, data in SSEBuffer().feed(run):
            end += len(raw)
            if end > first or data is None:
                continue
            tally = Tally()
            verdict = ANTHROPIC_MESSAGES.tally_event(tally, orjson.loads(data), False)
            assert verdict.keep and not verdict.terminal, events
            assert _usage(tally) == _usage(Tally()), events


def test_other_families_read_every_event_of_a_run() -> None:
    lean = {f.name for f in FAMILIES if type(f).first_count is not ApiFamily.first_count}
    assert lean == {CHAT.name, ANTHROPIC_MESSAGES.name}  # each with its tests above
    for family in FAMILIES:
        if family.name not in lean:
            assert family.first_count(b"data: {}\n\n") == 0
