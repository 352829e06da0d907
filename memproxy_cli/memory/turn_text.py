"""How a remembered turn is written as text, and how to read its user part back."""

from __future__ import annotations

MAX_PART_CHARS = 4000
_USER = "User: "
_ASSISTANT = "\nAssistant: "


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def format_turn(user: str, assistant: str, limit: int = MAX_PART_CHARS) -> str:
    """`User: <user>\\nAssistant: <assistant>`, each part clipped to `limit` characters."""
    return f"{_USER}{_clip(user, limit)}{_ASSISTANT}{_clip(assistant, limit)}"


def user_part(text: str) -> str | None:
    """The user message of a stored turn, or None when the text is not in turn format."""
    if not text.startswith(_USER):
        return None
    end = text.find(_ASSISTANT)
    return text[len(_USER) : end] if end >= 0 else None
