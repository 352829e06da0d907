"""How a remembered turn is written: its parts apart for the index, with labels for people.

A store indexes `unlabeled(...)`: the human's words, the answer and the note of what was done,
one after the other, so a search for `use` or `assist` does not match every memory through its
labels. Where a memory is shown or injected, `labeled` puts `User:`, `Assistant:` and `Actions:`
back from the part lengths kept beside it.
"""

from __future__ import annotations

import hashlib
from typing import Any

MAX_PART_CHARS = 4000
_USER = "User: "
_ASSISTANT = "\nAssistant: "
_ACTIONS = "\nActions: "
_SEP = "\n"


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def format_turn(user: str, assistant: str, limit: int = MAX_PART_CHARS, note: str = "") -> str:
    """`User: <user>\\nAssistant: <assistant>[\\nActions: <note>]`, parts clipped to `limit`."""
    text = f"{_USER}{_clip(user, limit)}{_ASSISTANT}{_clip(assistant, limit)}"
    return text + f"{_ACTIONS}{_clip(note, limit)}" if note.strip() else text


def unlabeled(
    user: str, assistant: str, note: str = "", limit: int = MAX_PART_CHARS
) -> tuple[str, list[int]]:
    """The parts, clipped and joined by newlines, and each part's length. A statement with
    no answer and no note (a fact drawn from a turn) is one part, shown as it is."""
    parts = [_clip(user, limit), _clip(assistant, limit)]
    if note.strip():
        parts.append(_clip(note, limit))
    elif not parts[1]:
        parts.pop()
    return _SEP.join(parts), [len(p) for p in parts]


def labeled(text: str, lengths: Any) -> str:
    """A stored text with its labels back; a text without valid part lengths as it is."""
    if not (
        isinstance(lengths, list)
        and len(lengths) in (2, 3)
        and all(isinstance(n, int) and n >= 0 for n in lengths)
        and sum(lengths) + len(lengths) - 1 == len(text)
    ):
        return text
    parts, at = [], 0
    for n in lengths:
        parts.append(text[at : at + n])
        at += n + len(_SEP)
    if len(parts) == 3:
        return format_turn(parts[0], parts[1], len(text) + 1, parts[2])
    return format_turn(parts[0], parts[1], len(text) + 1)


def user_part(text: str) -> str | None:
    """The user message of a labeled turn, or None when the text is not in turn format."""
    if not text.startswith(_USER):
        return None
    end = text.find(_ASSISTANT)
    return text[len(_USER) : end] if end >= 0 else None


def dedup_key(user: str, assistant: str) -> str:
    """The same for two turns that differ only in case and whitespace."""
    normal = " ".join(user.split()).lower() + "\x00" + " ".join(assistant.split()).lower()
    return hashlib.blake2b(normal.encode(), digest_size=12).hexdigest()
