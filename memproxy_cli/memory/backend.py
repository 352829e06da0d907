"""The MemoryBackend protocol and the records it deals in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Turn:
    """One answered exchange, already redacted, to be remembered.

    The parts are kept apart so a backend indexes the words, not labels: `format_turn` adds
    `User:`/`Assistant:`/`Actions:` only where a memory is shown or injected. A backend stores a
    turn whose `dedup_key` it already holds in the scope once, refreshing its recency instead.
    """

    user: str  # the human's words, client chrome removed
    assistant: str  # the final answer of the agent loop
    model: str | None = None
    request_id: str | None = None
    created_at: float | None = None  # unix seconds; now when None
    metadata: dict[str, Any] = field(default_factory=dict)
    client: str | None = None  # the tool that sent it, e.g. claude-cli (from its User-Agent)
    note: str = ""  # what the loop did: "edited src/app.py, ran pytest"
    chrome_chars: int = 0  # how much client chrome was removed from the human's message
    dedup_key: str | None = None  # the same for turns whose normalised text is the same


@dataclass(slots=True)
class Memory:
    id: str
    scope: str
    text: str
    created_at: float
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class MemoryBackend(Protocol):
    """Where memories live. `scope` is the project (or `user:<id>` without one)."""

    name: str

    async def search(self, scope: str, query: str, k: int) -> list[Memory]: ...

    async def add(self, scope: str, turn: Turn) -> str | None: ...

    async def list(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]: ...

    async def forget(self, scope: str, memory_id: str) -> bool: ...

    async def export(self, scope: str) -> Sequence[Memory]: ...

    async def close(self) -> None: ...
