"""The conversation of a request as memory reads it, whatever API family it came in.

Each API family turns its request body into a `Conversation`: the system text and the messages
in one chat shape (`role` user | assistant | system, `content` a str or a list of blocks of type
`text`/`input_text`/`tool_result`, and in assistant messages `tool_use` blocks
`{"type": "tool_use", "name": str, "input": dict}` for the tool calls the model made). A tool's
result is a user message whose content holds a `tool_result` block (whatever the API calls it:
a chat `tool` message, Responses `function_call_output`, Gemini `functionResponse`). Memory
reads only this, so it never branches on the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from memproxy_cli.config import InjectionStrategy
from memproxy_cli.memory.chrome import strip_wrappers

Body = dict[str, Any]

_TEXT_TYPES = frozenset({"text", "input_text"})


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: Any = None  # the request's output limit as sent (a probe sends 1)
    # The body itself says another conversation's tool call started this one (Gemini CLI's
    # subagents offer `complete_task`); header markers are read by memory/capture.py.
    subagent: bool = False


class Dialect(Protocol):
    """What memory needs of an API family: read its conversation, write a memory block in."""

    def conversation(self, body: Body) -> Conversation: ...

    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None: ...


def chat_messages(raw: Any) -> list[dict[str, Any]]:
    return [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []


def content_texts(content: Any, types: frozenset[str] = _TEXT_TYPES) -> list[str]:
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
        and block["type"] in types
        and isinstance(block.get("text"), str)
    ]


def has_tool_result(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for block in content:  # noqa: SIM110 (a loop costs less than any(...) on every request)
        if isinstance(block, dict) and block.get("type") == "tool_result":
            return True
    return False


def spoken_text(message: dict[str, Any]) -> str:
    """What a user actually typed: no tool results, client wrappers (chrome.py) or injected
    memories."""
    if has_tool_result(message.get("content")):
        return ""
    joined = "\n".join(content_texts(message.get("content")))
    return strip_wrappers(joined).strip()


def user_texts(conversation: Conversation) -> list[str]:
    """The typed text of every user message, oldest first (tool-result turns skipped)."""
    found = (spoken_text(m) for m in conversation.messages if m.get("role") == "user")
    return [t for t in found if t]


def last_turn(msgs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last message that is a turn of the conversation.

    Claude Code appends mid-conversation `system` messages (agent and skill listings) after the
    user's message; they are context, not a turn, so they are skipped.
    """
    return next((m for m in reversed(msgs) if m.get("role") != "system"), None)


def new_user_text(conversation: Conversation) -> str | None:
    """The new user message when the last turn carries one; None on tool-result turns."""
    last = last_turn(conversation.messages)
    if last is None or last.get("role") != "user":
        return None
    return spoken_text(last) or None


def all_texts(conversation: Conversation) -> list[str]:
    """Every text in the request (system and messages), for spotting what is already there."""
    texts = [conversation.system]
    for m in conversation.messages:
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
