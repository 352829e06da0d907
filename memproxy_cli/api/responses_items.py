"""Responses input items as the chat-shaped messages memory reads.

Messages keep their role (`developer` reads as `system`); tool calls become `tool_use` blocks
with their arguments, tool outputs `tool_result` blocks; reasoning items are not read.
"""

from __future__ import annotations

from typing import Any

import orjson

_PART_TEXT = frozenset({"input_text", "output_text", "text"})


def chat_content(content: Any) -> Any:
    """Responses content parts in the chat shape memory reads (text parts as `text` blocks)."""
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    blocks: list[Any] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if isinstance(kind, str) and kind in _PART_TEXT:  # a hostile list type is not hashable
            if isinstance(part.get("text"), str):
                blocks.append({"type": "text", "text": part["text"]})
        else:
            blocks.append(part)
    return blocks


def _tool_output(item: dict[str, Any]) -> Any:
    output = item.get("output")
    if isinstance(output, list):
        return chat_content(output)
    return output if isinstance(output, str) else ""


def _chat_message(item: Any) -> dict[str, Any] | None:
    """One input item as a chat message; None for items memory does not read (reasoning)."""
    if not isinstance(item, dict):
        return None
    kind = item.get("type", "message")
    if not isinstance(kind, str):
        return None
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str):
            return None
        role = "system" if role == "developer" else role
        return {"role": role, "content": chat_content(item.get("content"))}
    if kind == "compaction_trigger":  # Codex asks for a summary of the history: no new turn
        return {"role": "user", "content": [{"type": "compaction_trigger"}]}
    if kind.endswith("_call_output"):  # function_call_output, custom_tool_call_output, ...
        result = {
            "type": "tool_result",
            "tool_use_id": item.get("call_id"),
            "content": _tool_output(item),
        }
        return {"role": "user", "content": [result]}
    if kind.endswith("_call"):  # function_call, custom_tool_call, local_shell_call, ...
        use = {
            "type": "tool_use",
            "id": item.get("call_id"),
            "name": item.get("name", kind),
            "input": _call_input(item),
        }
        return {"role": "assistant", "content": [use]}
    return None


def responses_messages(given: Any) -> list[dict[str, Any]]:
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not isinstance(given, list):
        return []
    found = (_chat_message(item) for item in given)
    return [m for m in found if m is not None]


def _call_input(item: dict[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as memory reads them (a note of what was done)."""
    arguments = item.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None
        return parsed if isinstance(parsed, dict) else {}
    if isinstance(item.get("input"), str):  # custom tools (Codex's apply_patch) send text
        return {"input": item["input"]}
    action = item.get("action")
    if isinstance(action, dict) and isinstance(action.get("command"), list | str):
        return {"command": action["command"]}
    return {}
