"""The spend store's tables, derived from `store.rows` (the request log row is defined once)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from memproxy_cli.store.rows import (
    DAILY_COUNTERS,
    INDEXED,
    REQUIRED,
    TEXT_LENGTHS,
    UNBOUNDED_TEXT,
    RequestRow,
)

metadata = MetaData()


def _column(name: str, kind: Any) -> Column[Any]:
    nullable = name not in REQUIRED and name != "memories_injected"
    if name in TEXT_LENGTHS:
        return Column(
            name, String(TEXT_LENGTHS[name]), nullable=nullable, unique=name == "request_id"
        )
    if name in UNBOUNDED_TEXT:
        return Column(name, Text, nullable=nullable)
    if name == "extra":
        return Column(name, JSON, nullable=True)
    sql_type = {"bool": Boolean, "int": Integer, "float": Float}[_base(kind)]
    return Column(name, sql_type, nullable=nullable)


def _base(kind: Any) -> str:
    """`int | None` -> 'int' (field types are strings under postponed annotations)."""
    return str(kind).split("|")[0].strip()


request_log = Table(
    "request_log",
    metadata,
    Column("id", Integer, primary_key=True),
    *(_column(f.name, f.type) for f in fields(RequestRow)),
    *(Index(f"ix_request_log_{name}", name) for name in INDEXED),
)

daily_spend = Table(
    "daily_spend",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", String(10), nullable=False),
    Column("project", String(200), nullable=False, default=""),
    Column("model", String(200), nullable=False, default=""),
    *(Column(name, Integer, nullable=False, default=0) for name in DAILY_COUNTERS),
    Column("cost_usd", Float, nullable=False, default=0.0),
    UniqueConstraint("day", "project", "model", name="uq_daily_spend_key"),
)
