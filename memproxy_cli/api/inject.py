"""Writing the memory block into chat-shaped messages (shared by the chat-like families)."""

from __future__ import annotations

from typing import Any


def last_user(messages: Any) -> dict[str, Any] | None:
    if not isinstance(messages, list):
        return None
    return next(
        (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None
    )


def add_block(message: dict[str, Any], block: dict[str, Any], prefix: bool) -> None:
    """Add a content block before or after the message's content (a str becomes one block)."""
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    elif not isinstance(content, list):
        content = []
    content = [block, *content] if prefix else [*content, block]
    message["content"] = content


def add_text(message: dict[str, Any], text: str, prefix: bool, block_type: str = "text") -> None:
    """Append (or prepend) `text`: after a blank line in a str content, as a block in a list."""
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = f"{text}\n\n{content}" if prefix else f"{content}\n\n{text}"
    else:
        add_block(message, {"type": block_type, "text": text}, prefix)
