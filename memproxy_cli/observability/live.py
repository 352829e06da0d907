"""The live picture `memproxy top` shows: recent rows in a ring buffer and rolling aggregates.

Kept in memory only (the store is never read): each finished request appends one small tuple
to a time window and its row to the ring of recent requests, and adds to per-project and
per-client totals. A snapshot is computed when the CLI asks for one.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, NamedTuple

from memproxy_cli.observability.labels import LabelCap
from memproxy_cli.store.rows import RequestRow

WINDOW_S = 60.0  # latency percentiles and per-group rates cover this much recent time
RATE_WINDOW_S = 10.0  # requests per second over this much
RECENT = 50
MAX_WINDOW_ROWS = 20_000
MAX_GROUPS = 100


class _Point(NamedTuple):
    ended_at: float
    project: str
    client: str
    error: bool
    latency_ms: float
    overhead_ms: float


class _Totals:
    __slots__ = ("cost_usd", "errors", "input_tokens", "memories", "output_tokens", "requests")

    def __init__(self) -> None:
        self.requests = self.errors = self.input_tokens = self.output_tokens = self.memories = 0
        self.cost_usd = 0.0

    def add(self, row: RequestRow, error: bool) -> None:
        self.requests += 1
        self.errors += error
        self.input_tokens += row.prompt_tokens or 0
        self.output_tokens += row.completion_tokens or 0
        self.memories += row.memories_injected
        self.cost_usd += row.cost_usd or 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "memories_injected": self.memories,
        }


class LiveView:
    """Recent requests and rolling aggregates, for the control socket's `/live`."""

    def __init__(self, recent: int = RECENT) -> None:
        self._recent: deque[RequestRow] = deque(maxlen=recent)
        self._window: deque[_Point] = deque(maxlen=MAX_WINDOW_ROWS)
        self._projects = LabelCap(MAX_GROUPS)
        self._clients = LabelCap(MAX_GROUPS)
        self._total = _Totals()
        self._by_project: dict[str, _Totals] = {}
        self._by_client: dict[str, _Totals] = {}
        self.started_at = time.time()

    def observe(self, row: RequestRow) -> None:
        error = row.status != "ok"
        project, client = self._projects(row.project), self._clients(row.client)
        self._recent.append(row)
        self._window.append(
            _Point(
                row.ended_at or row.started_at,
                project,
                client,
                error,
                row.latency_ms or 0.0,
                row.overhead_ms or 0.0,
            )
        )
        self._total.add(row, error)
        for groups, name in ((self._by_project, project), (self._by_client, client)):
            totals = groups.get(name)
            if totals is None:
                totals = groups[name] = _Totals()
            totals.add(row, error)

    def snapshot(self, inflight: int = 0, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        window = self._recent_points(now)
        return {
            "now": now,
            "uptime_s": round(now - self.started_at, 3),
            "inflight": inflight,
            "window_s": WINDOW_S,
            **self._total.as_dict(),
            **_rates(window, now, self.started_at),
            "projects": _groups(self._by_project, window, "project", now, self.started_at),
            "clients": _groups(self._by_client, window, "client", now, self.started_at),
            "recent": [_recent_row(r) for r in reversed(self._recent)],
        }

    def _recent_points(self, now: float) -> list[_Point]:
        cutoff = now - WINDOW_S
        window = self._window
        while window and window[0].ended_at < cutoff:
            window.popleft()
        return list(window)


def _rates(points: list[_Point], now: float, started_at: float) -> dict[str, Any]:
    span = min(RATE_WINDOW_S, max(now - started_at, 1e-3))
    recent = [p for p in points if p.ended_at >= now - RATE_WINDOW_S]
    latencies = sorted(p.latency_ms for p in points)
    overheads = sorted(p.overhead_ms for p in points)
    return {
        "rps": round(len(recent) / span, 3),
        "window_requests": len(points),
        "window_errors": sum(p.error for p in points),
        "latency_ms": {"p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99)},
        "overhead_ms": {"p50": _percentile(overheads, 50), "p99": _percentile(overheads, 99)},
    }


def _groups(
    totals: dict[str, _Totals], points: list[_Point], field: str, now: float, started_at: float
) -> list[dict[str, Any]]:
    by_name: dict[str, list[_Point]] = {}
    for p in points:
        by_name.setdefault(getattr(p, field), []).append(p)
    rows = []
    for name, total in totals.items():
        rows.append(
            {"name": name, **total.as_dict(), **_rates(by_name.get(name, []), now, started_at)}
        )
    rows.sort(key=lambda r: (-r["rps"], -r["requests"], r["name"]))
    return rows


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted VALUES (None when empty)."""
    if not values:
        return None
    rank = max(1, -(-len(values) * pct // 100))
    return round(values[int(rank) - 1], 3)


def _recent_row(row: RequestRow) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "started_at": row.started_at,
        "project": row.project,
        "client": row.client,
        "model": row.model,
        "status": row.status,
        "http_status": row.http_status,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "overhead_ms": row.overhead_ms,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost_usd": row.cost_usd,
        "memories_injected": row.memories_injected,
    }
