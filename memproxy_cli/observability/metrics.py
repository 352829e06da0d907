"""Prometheus metrics of the gateway, in the text exposition format (version 0.0.4).

Each finished request updates one cell, found by its (project, model, client, status) labels:
a dict lookup, a few additions and three bisects, a couple of microseconds. Histograms and token
counters are summed over cells when Prometheus scrapes, so the hot path never touches more than
one cell. Label values are capped (`labels.LabelCap`), and so is the number of cells.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from memproxy_cli.errors import RowStatus
from memproxy_cli.observability.labels import OTHER, LabelCap
from memproxy_cli.store.rows import RequestRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
RECALL_OUTCOMES = ("hit", "miss", "timeout", "error")
STATUSES = frozenset(s.value for s in RowStatus)
MAX_PROJECTS, MAX_MODELS, MAX_CLIENTS = 200, 100, 50
MAX_CELLS = 5000
_RAW_CACHE_MAX = 20_000

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]
GaugeCallback = Callable[[], Iterable[Sample]]


class Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket; the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def add(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum
        self.count += other.count


class Cell:
    """Everything counted for one (project, model, client, status)."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "cost",
        "input",
        "latency",
        "output",
        "overhead",
        "requests",
        "ttft",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.input = self.output = self.cache_read = self.cache_write = 0
        self.cost = 0.0
        self.latency = Histogram(LATENCY_BUCKETS_S)
        self.ttft = Histogram(LATENCY_BUCKETS_S)
        self.overhead = Histogram(OVERHEAD_BUCKETS_S)


@dataclass(frozen=True, slots=True)
class Gauge:
    """A value read when Prometheus scrapes (queue depth, in-flight, cooldowns...)."""

    name: str
    help: str
    kind: str  # gauge | counter
    read: GaugeCallback


class GatewayMetrics:
    """The counters and histograms of finished requests, plus pluggable gauges."""

    def __init__(self, known_models: Iterable[str] = ()) -> None:
        self.projects = LabelCap(MAX_PROJECTS)
        self.models = LabelCap(MAX_MODELS, known_models)
        self.clients = LabelCap(MAX_CLIENTS)
        self._cells: dict[tuple[str, str, str, str], Cell] = {}
        self._by_raw: dict[tuple[str | None, str | None, str | None, str], Cell] = {}
        self._recalls: dict[tuple[str, str], int] = {}
        self._memories: dict[str, int] = {}
        self._gauges: list[Gauge] = []
        self.started_at = time.time()

    def add_gauge(self, name: str, help: str, read: GaugeCallback, kind: str = "gauge") -> None:
        """Register a value read at scrape time; `read` returns (labels, value) pairs."""
        self._gauges.append(Gauge(name, help, kind, read))

    def observe(self, row: RequestRow, recall: str) -> None:
        """Count one finished request (runs off the response path, via loop.call_soon)."""
        raw = (row.project, row.model, row.client, row.status)
        cell = self._by_raw.get(raw)
        if cell is None:
            cell = self._cell_for(raw)
        cell.requests += 1
        cell.input += row.prompt_tokens or 0
        cell.output += row.completion_tokens or 0
        cell.cache_read += row.cache_read_tokens or 0
        cell.cache_write += row.cache_write_tokens or 0
        if row.cost_usd:
            cell.cost += row.cost_usd
        if row.latency_ms is not None:
            cell.latency.observe(row.latency_ms / 1000.0)
        if row.ttft_ms is not None:
            cell.ttft.observe(row.ttft_ms / 1000.0)
        if row.overhead_ms is not None:
            cell.overhead.observe(row.overhead_ms / 1000.0)
        if recall in RECALL_OUTCOMES:
            key = (self.projects(row.project), recall)
            self._recalls[key] = self._recalls.get(key, 0) + 1
            if row.memories_injected:
                project = key[0]
                self._memories[project] = self._memories.get(project, 0) + row.memories_injected

    def _cell_for(self, raw: tuple[str | None, str | None, str | None, str]) -> Cell:
        project, model, client, status = raw
        key = (
            self.projects(project),
            self.models(model),
            self.clients(client),
            status if status in STATUSES else OTHER,
        )
        cell = self._cells.get(key)
        if cell is None:
            if len(self._cells) >= MAX_CELLS:
                key = (OTHER, OTHER, OTHER, key[3])
                cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = Cell()
        if len(self._by_raw) < _RAW_CACHE_MAX:
            self._by_raw[raw] = cell
        return cell

    def cells(self) -> Iterator[tuple[tuple[str, str, str, str], Cell]]:
        return iter(list(self._cells.items()))

    # -- exposition -------------------------------------------------------------------------

    def exposition(self) -> str:
        """The whole scrape, in Prometheus text format."""
        out: list[str] = []
        cells = list(self._cells.items())
        _family(out, "memproxy_requests_total", "counter", "Finished requests.")
        for (project, model, client, status), cell in cells:
            series: Labels = (
                ("project", project),
                ("model", model),
                ("client", client),
                ("status", status),
            )
            _sample(out, "memproxy_requests_total", series, cell.requests)
        _tokens(out, cells)
        _family(out, "memproxy_cost_usd_total", "counter", "Cost of finished requests in USD.")
        for summed, cost in _summed(cells, lambda c: c.cost, with_client=True):
            _sample(out, "memproxy_cost_usd_total", summed, cost)
        histograms = (
            ("memproxy_request_duration_seconds", "Request latency.", lambda c: c.latency),
            (
                "memproxy_time_to_first_byte_seconds",
                "Time to the first streamed event sent to the client.",
                lambda c: c.ttft,
            ),
            (
                "memproxy_gateway_overhead_seconds",
                "Time spent in the gateway itself (not waiting on the upstream).",
                lambda c: c.overhead,
            ),
        )
        for name, help_text, pick in histograms:
            _family(out, name, "histogram", help_text)
            for merged, hist in _merged(cells, pick):
                _histogram(out, name, merged, hist)
        self._memory(out)
        for gauge in self._gauges:
            self._gauge(out, gauge)
        overflow = self.projects.overflowed + self.models.overflowed + self.clients.overflowed
        _family(
            out,
            "memproxy_label_overflow_total",
            "counter",
            'Requests whose project, model or client was counted as "other" (too many names).',
        )
        _sample(out, "memproxy_label_overflow_total", (), overflow)
        _family(out, "memproxy_start_time_seconds", "gauge", "When the daemon started (unix).")
        _sample(out, "memproxy_start_time_seconds", (), self.started_at)
        out.append("")
        return "\n".join(out)

    def _memory(self, out: list[str]) -> None:
        _family(out, "memproxy_memory_recalls_total", "counter", "Memory recalls by outcome.")
        for (project, outcome), n in list(self._recalls.items()):
            _sample(
                out,
                "memproxy_memory_recalls_total",
                (("project", project), ("outcome", outcome)),
                n,
            )
        _family(out, "memproxy_memories_injected_total", "counter", "Memories injected.")
        for project, n in list(self._memories.items()):
            _sample(out, "memproxy_memories_injected_total", (("project", project),), n)

    def _gauge(self, out: list[str], gauge: Gauge) -> None:
        try:
            samples = list(gauge.read())
        except Exception:  # a broken reader must not break the scrape
            samples = []
        _family(out, gauge.name, gauge.kind, gauge.help)
        for labels, value in samples:
            _sample(out, gauge.name, labels, value)


def _tokens(out: list[str], cells: list[tuple[tuple[str, str, str, str], Cell]]) -> None:
    _family(out, "memproxy_tokens_total", "counter", "Tokens of finished requests, by type.")
    kinds: tuple[tuple[str, Callable[[Cell], float]], ...] = (
        ("input", lambda c: c.input),
        ("output", lambda c: c.output),
        ("cache_read", lambda c: c.cache_read),
        ("cache_write", lambda c: c.cache_write),
    )
    for kind, pick in kinds:
        for labels, value in _summed(cells, pick, with_client=True):
            _sample(out, "memproxy_tokens_total", (*labels, ("type", kind)), value)


def _summed(
    cells: list[tuple[tuple[str, str, str, str], Cell]],
    pick: Callable[[Cell], float],
    with_client: bool,
) -> list[tuple[Labels, float]]:
    totals: dict[Labels, float] = {}
    for (project, model, client, _status), cell in cells:
        key: Labels = (("project", project), ("model", model))
        if with_client:
            key = (*key, ("client", client))
        totals[key] = totals.get(key, 0) + pick(cell)
    return list(totals.items())


def _merged(
    cells: list[tuple[tuple[str, str, str, str], Cell]], pick: Callable[[Cell], Histogram]
) -> list[tuple[Labels, Histogram]]:
    merged: dict[Labels, Histogram] = {}
    for (project, model, _client, _status), cell in cells:
        hist = pick(cell)
        if not hist.count:
            continue
        key = (("project", project), ("model", model))
        total = merged.get(key)
        if total is None:
            total = merged[key] = Histogram(hist.bounds)
        total.add(hist)
    return list(merged.items())


def _histogram(out: list[str], name: str, labels: Labels, hist: Histogram) -> None:
    running = 0
    for bound, n in zip(hist.bounds, hist.counts, strict=False):
        running += n
        _sample(out, name + "_bucket", (*labels, ("le", _number(bound))), running)
    _sample(out, name + "_bucket", (*labels, ("le", "+Inf")), hist.count)
    _sample(out, name + "_sum", labels, hist.sum)
    _sample(out, name + "_count", labels, hist.count)


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _sample(out: list[str], name: str, labels: Labels, value: float) -> None:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        out.append(f"{name}{{{inner}}} {_number(value)}")
    else:
        out.append(f"{name} {_number(value)}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
