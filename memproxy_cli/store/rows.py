"""The request log row, defined once: its fields, their column types, and the counters.

The gateway fills a `RequestRow`; the `request_log` table (store/models.py), the insert
(store/insert.py) and the totals queries (store/queries.py) are all derived from what is said
here. Migrations stay literal, and tests/test_store_migrations.py pins them to this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from memproxy_cli.errors import RowStatus


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
    status: str = RowStatus.OK  # a RowStatus value
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

    def usage(self) -> dict[str, int | None]:
        """The token counts, by counter name (what pricing reads)."""
        return {name: getattr(self, name) for name in TOKEN_COUNTERS}


# The longest value a text column holds; fields not named here are numbers, flags or free text.
TEXT_LENGTHS: dict[str, int] = {
    "request_id": 128,
    "endpoint": 200,
    "project": 200,
    "user_id": 200,
    "client": 100,
    "client_version": 100,
    "client_instance": 200,
    "client_session": 200,
    "trace_id": 64,
    "model": 200,
    "provider": 100,
    "status": 40,
}
UNBOUNDED_TEXT = frozenset({"error"})
REQUIRED = frozenset({"request_id", "started_at", "endpoint", "stream", "status"})
INDEXED = ("started_at", "project", "model", "status")

# The token counts a row carries; the daily totals add them up, with requests and failures.
TOKEN_COUNTERS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")
DAILY_COUNTERS = ("requests", "failures", *TOKEN_COUNTERS)
