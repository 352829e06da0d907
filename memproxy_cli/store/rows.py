"""The request log row the gateway hands to the spend writer (one per request)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestRow:
    """One request, as recorded; never a prompt, a key or a cookie value."""

    request_id: str
    started_at: float  # unix seconds
    endpoint: str  # e.g. /v1/chat/completions
    ended_at: float | None = None
    project: str | None = None
    user_id: str | None = None
    client: str | None = None  # e.g. claude-cli, openai-python
    client_version: str | None = None
    client_instance: str | None = None  # x-pycharm-instance
    client_session: str | None = None  # X-Claude-Code-Session-Id
    trace_id: str | None = None  # from the W3C traceparent
    model: str | None = None
    provider: str | None = None  # openai | anthropic | echo | litellm:<provider>
    stream: bool = False
    status: str = "ok"  # ok | error | client_disconnect | upstream_timeout | rejected
    http_status: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    overhead_ms: float | None = None
    memories_injected: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
