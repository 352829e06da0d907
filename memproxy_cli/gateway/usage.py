"""Read token usage and the assistant's text out of responses and SSE events, per API family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Tally:
    """What one response said about itself: tokens and the assistant's final text."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def openai_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.prompt_tokens = _int(usage.get("prompt_tokens"), self.prompt_tokens)
        self.completion_tokens = _int(usage.get("completion_tokens"), self.completion_tokens)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            self.cache_read_tokens = _int(details.get("cached_tokens"), self.cache_read_tokens)

    def anthropic_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.prompt_tokens = _int(usage.get("input_tokens"), self.prompt_tokens)
        self.completion_tokens = _int(usage.get("output_tokens"), self.completion_tokens)
        self.cache_read_tokens = _int(usage.get("cache_read_input_tokens"), self.cache_read_tokens)
        self.cache_write_tokens = _int(
            usage.get("cache_creation_input_tokens"), self.cache_write_tokens
        )

    # Whole responses -------------------------------------------------------------------------
    def openai_response(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        self.openai_usage(body.get("usage"))
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict):
                self.text_parts.append(_content_text(message.get("content")))

    def anthropic_response(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        self.anthropic_usage(body.get("usage"))
        self.text_parts.append(_content_text(body.get("content")))

    # Stream events ---------------------------------------------------------------------------
    def openai_event(self, event: Any) -> bool:
        """Account one chunk; True when it is the usage-only chunk (choices empty)."""
        if not isinstance(event, dict):
            return False
        choices = event.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and choice.get("index", 0) == 0:
                    content = delta.get("content")
                    if isinstance(content, str):
                        self.text_parts.append(content)
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.openai_usage(usage)
            return not choices
        return False

    def anthropic_event(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str):
                    self.text_parts.append(text)
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self.anthropic_usage(message.get("usage"))
        elif kind == "message_delta":
            self.anthropic_usage(event.get("usage"))


def _int(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b.get("text", "")
            for b in content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    return ""
