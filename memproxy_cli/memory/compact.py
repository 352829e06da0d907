"""What a recalled memory says: the human's statement and the gist of the answer."""

from __future__ import annotations

import re

from memproxy_cli.memory.turn_text import format_turn, user_part

USER_CHARS = 400
GIST_CHARS = 200
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def gist(answer: str, limit: int = GIST_CHARS) -> str:
    """The answer's first sentences that fit in `limit` characters (at least the first one,
    clipped): a raw answer is mostly detail that would fill the injection budget."""
    taken = ""
    for sentence in _SENTENCE_END.split(answer.strip()):
        sentence = " ".join(sentence.split())
        if not sentence:
            continue
        joined = f"{taken} {sentence}" if taken else sentence
        if len(joined) > limit:
            break
        taken = joined
    return taken or _clip(answer, limit)


def parts(text: str, user_text: str | None, assistant_text: str | None) -> tuple[str, str]:
    """The user and assistant parts of a stored memory (older rows hold only `text`)."""
    if user_text is not None and assistant_text is not None:
        return user_text, assistant_text
    user = user_part(text)
    if user is None:
        return text, ""
    return user, text[len("User: ") + len(user) + len("\nAssistant: ") :]


def compact_text(user: str, assistant: str) -> str:
    """The memory as injected: the statement (as said, clipped) and the answer's gist; a
    statement without an answer (a fact drawn from a turn) as it is."""
    if not assistant.strip():
        return _clip(user, USER_CHARS)
    return format_turn(user, gist(assistant), USER_CHARS)


def embedding_text(user: str, assistant: str) -> str:
    """What is embedded: the human's statement (the answer is found by its words)."""
    return _clip(user, USER_CHARS) if user.strip() else gist(assistant)
