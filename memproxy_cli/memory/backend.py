"""The MemoryBackend protocol and the records it deals in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Turn:
    """One answered exchange, already redacted, to be remembered."""

    user: str
    assistant: str
    model: str | None = None
    request_id: str | None = None
    created_at: float | None = None  # unix seconds; now when None
    metadata: dict[str, Any] = field(default_factory=dict)
    client: str | None = None  # the calling tool, e.g. claude-cli
    note: str | None = None  # a short remark about the turn, kept beside it


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
