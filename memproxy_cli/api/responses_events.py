"""The Responses objects and SSE events the gateway makes itself (echo, errors, translation)."""

from __future__ import annotations

import time

from memproxy_cli.api.family import Body, framed
from memproxy_cli.api.openai_chat import split_text


def response_shell(response_id: str, model: str, status: str) -> Body:
    """A response object with every field the API always sends, and no output yet."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "metadata": {},
    }


def response_events(response: Body, pieces: int = 4) -> list[bytes]:
    """The Responses event stream that delivers `response` (its message items), numbered."""
    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    opening["completed_at"] = None
    events: list[tuple[str, Body]] = [
        ("response.created", {"response": opening}),
        ("response.in_progress", {"response": opening}),
    ]
    for index, item in enumerate(response.get("output") or []):
        events += _item_events(index, item, pieces)
    events.append(("response.completed", {"response": response}))
    return [
        framed({"type": name, "sequence_number": n, **data}, name)
        for n, (name, data) in enumerate(events)
    ]


def _item_events(index: int, item: Body, pieces: int) -> list[tuple[str, Body]]:
    added = {"output_index": index, "item": {**item, "status": "in_progress", "content": []}}
    events: list[tuple[str, Body]] = [("response.output_item.added", added)]
    for c, part in enumerate(item.get("content") or []):
        at = {"item_id": item["id"], "output_index": index, "content_index": c}
        text = part.get("text", "")
        empty = {**part, "text": ""}
        events.append(("response.content_part.added", {**at, "part": empty}))
        for piece in split_text(text, pieces):
            events.append(("response.output_text.delta", {**at, "delta": piece}))
        events.append(("response.output_text.done", {**at, "text": text}))
        events.append(("response.content_part.done", {**at, "part": part}))
    events.append(("response.output_item.done", {"output_index": index, "item": item}))
    return events
