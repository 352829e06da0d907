"""What one response said about itself: tokens and the assistant's final text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memproxy_cli.memory.conversation import content_texts
from memproxy_cli.upstream.bounds import CappedText

_TEXT = frozenset({"text"})


@dataclass(slots=True)
class Tally:
    """Filled by the API family from a whole response or from each stream event."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    text_parts: CappedText = field(default_factory=CappedText)
    failure: str | None = None  # the answer says it failed (e.g. a `response.failed` event)

    @property
    def text(self) -> str:
        return self.text_parts.text()

    def add_text(self, text: str) -> None:
        self.text_parts.append(text)


def as_int(value: Any, default: int | None) -> int | None:
    """`value` when it is a real int (not a bool), else `default`."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def blocks_text(content: Any) -> str:
    """The joined text of a str content or of the `text` blocks of a list content."""
    return "".join(content_texts(content, _TEXT))


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) where no tokenizer is at hand."""
    return max(1, len(text) // 4)
