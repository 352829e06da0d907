"""SQLModel tables of the spend store: the request log and daily aggregates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class RequestLog(SQLModel, table=True):
    """One row per request (the columns of `RequestRow`)."""

    __tablename__ = "request_log"
    __table_args__ = (
        Index("ix_request_log_started_at", "started_at"),
        Index("ix_request_log_project", "project"),
        Index("ix_request_log_model", "model"),
        Index("ix_request_log_status", "status"),
        Index("ix_request_log_trace_id", "trace_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=128, unique=True)
    started_at: float
    ended_at: float | None = None
    project: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)
    client: str | None = Field(default=None, max_length=100)
    client_version: str | None = Field(default=None, max_length=100)
    endpoint: str = Field(max_length=200)
    model: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    stream: bool = False
    status: str = Field(default="ok", max_length=40)
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
    extra: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    client_instance: str | None = Field(default=None, max_length=200)
    client_session: str | None = Field(default=None, max_length=200)
    trace_id: str | None = Field(default=None, max_length=64)


class DailySpend(SQLModel, table=True):
    """Totals per UTC day, project and model ('' when unknown, so the key stays unique)."""

    __tablename__ = "daily_spend"
    __table_args__ = (UniqueConstraint("day", "project", "model", name="uq_daily_spend_key"),)

    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(max_length=10)
    project: str = Field(default="", max_length=200)
    model: str = Field(default="", max_length=200)
    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


request_log = RequestLog.__table__  # type: ignore[attr-defined]
daily_spend = DailySpend.__table__  # type: ignore[attr-defined]
