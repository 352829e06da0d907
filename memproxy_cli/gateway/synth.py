"""Build complete responses and SSE streams for answers the gateway makes itself."""

from __future__ import annotations

import time
from typing import Any

import orjson


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def openai_completion(
    completion_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_stream(completion: dict[str, Any], include_usage: bool, pieces: int = 4) -> list[bytes]:
    """The SSE events of a chat.completion.chunk stream carrying `completion`'s first choice."""
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }
    choice = completion["choices"][0]
    text = choice["message"].get("content") or ""
    events = [_sse({**base, "choices": [_delta({"role": "assistant", "content": ""})]})]
    for part in _split(text, pieces):
        events.append(_sse({**base, "choices": [_delta({"content": part})]}))
    finish = choice.get("finish_reason") or "stop"
    events.append(_sse({**base, "choices": [_delta({}, finish)]}))
    if include_usage:
        events.append(_sse({**base, "choices": [], "usage": completion.get("usage")}))
    events.append(b"data: [DONE]\n\n")
    return events


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def anthropic_message(
    message_id: str, model: str, text: str, input_tokens: int, output_tokens: int
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_stream(message: dict[str, Any], pieces: int = 4) -> list[bytes]:
    """The Messages API event stream that delivers `message` (text and tool_use blocks)."""
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))}
    events = [_sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(message.get("content") or []):
        events += _anthropic_block(index, block, pieces)
    delta = {
        "type": "message_delta",
        "delta": {
            "stop_reason": message.get("stop_reason"),
            "stop_sequence": message.get("stop_sequence"),
        },
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    }
    events.append(_sse(delta, "message_delta"))
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


def _anthropic_block(index: int, block: dict[str, Any], pieces: int) -> list[bytes]:
    kind = block.get("type")
    if kind == "text":
        deltas = [{"type": "text_delta", "text": p} for p in _split(block.get("text", ""), pieces)]
        opening: dict[str, Any] = {"type": "text", "text": ""}
    elif kind == "tool_use":
        deltas = [
            {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        ]
        opening = {**block, "input": {}}
    else:
        deltas, opening = [], block
    events = [
        _sse(
            {"type": "content_block_start", "index": index, "content_block": opening},
            "content_block_start",
        )
    ]
    for delta in deltas:
        events.append(
            _sse(
                {"type": "content_block_delta", "index": index, "delta": delta},
                "content_block_delta",
            )
        )
    events.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return events


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) where no tokenizer is at hand."""
    return max(1, len(text) // 4)
