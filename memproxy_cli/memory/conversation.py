"""Read the text of OpenAI chat and Anthropic Messages request bodies, whatever their shape."""

from __future__ import annotations

import re
from typing import Any, Literal

Api = Literal["openai", "anthropic"]
Body = dict[str, Any]

_TEXT_TYPES = frozenset({"text", "input_text"})
# Client-generated context (Claude Code reminders) and our own block are not the user speaking.
_NOT_USER_WORDS = re.compile(
    r"<system-reminder>.*?</system-reminder>|<memproxy-memories>.*?</memproxy-memories>", re.S
)


def messages(body: Body) -> list[dict[str, Any]]:
    raw = body.get("messages")
    return [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []


def content_texts(content: Any) -> list[str]:
    """The text parts of a str content or a list of parts/blocks (tool blocks ignored)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [
        block["text"]
        for block in content
        if isinstance(block, dict)
        and isinstance(block.get("type"), str)  # a hostile list/dict type is not hashable
        and block["type"] in _TEXT_TYPES
        and isinstance(block.get("text"), str)
    ]


def has_tool_result(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def spoken_text(message: dict[str, Any]) -> str:
    """What a user actually typed: no tool results, reminders or injected memories."""
    if has_tool_result(message.get("content")):
        return ""
    joined = "\n".join(content_texts(message.get("content")))
    return _NOT_USER_WORDS.sub("", joined).strip()


def user_texts(body: Body) -> list[str]:
    """The typed text of every user message, oldest first (tool-result turns skipped)."""
    found = (spoken_text(m) for m in messages(body) if m.get("role") == "user")
    return [t for t in found if t]


def last_turn(msgs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last message that is a turn of the conversation.

    Claude Code appends mid-conversation `system` messages (agent and skill listings) after the
    user's message; they are context, not a turn, so they are skipped.
    """
    return next((m for m in reversed(msgs) if m.get("role") != "system"), None)


def new_user_text(body: Body) -> str | None:
    """The new user message when the last turn carries one; None on tool-result turns."""
    last = last_turn(messages(body))
    if last is None or last.get("role") != "user":
        return None
    return spoken_text(last) or None


def system_text(api: Api, body: Body) -> str:
    if api == "anthropic":
        return "\n".join(content_texts(body.get("system")))
    return "\n".join(
        t
        for m in messages(body)
        if m.get("role") in ("system", "developer")
        for t in content_texts(m.get("content"))
    )


def all_texts(api: Api, body: Body) -> list[str]:
    """Every text in the request (system and messages), for spotting what is already there."""
    texts = [system_text(api, body)]
    for m in messages(body):
        texts.extend(content_texts(m.get("content")))
        texts.extend(_tool_result_texts(m.get("content")))
    return [t for t in texts if t]


def _tool_result_texts(content: Any) -> list[str]:
    if not isinstance(content, list):
        return []
    found: list[str] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            found.extend(content_texts(block.get("content")))
    return found
