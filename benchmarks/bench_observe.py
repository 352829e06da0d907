"""Per-request CPU cost of observability on the event loop: metrics, live view, span building.

    .venv/bin/python benchmarks/bench_observe.py [--n 50000]

Each figure is the mean over N finished rows of what runs in the loop.call_soon callback that
`_finish` schedules (the response has already gone out by then).
"""

from __future__ import annotations

import argparse
import logging
import time

from memproxy_cli.observability.live import LiveView
from memproxy_cli.observability.metrics import GatewayMetrics
from memproxy_cli.observability.timeline import Timeline
from memproxy_cli.observability.tracing import Tracer, TracingSettings
from memproxy_cli.store.rows import RequestRow


def rows(n: int) -> list[tuple[RequestRow, Timeline]]:
    out = []
    for i in range(n):
        row = RequestRow(
            request_id=f"req_{i:024x}",
            started_at=time.time(),
            endpoint="/v1/chat/completions",
            project=f"project-{i % 5}",
            model=("gpt-4o-mini", "claude-sonnet-4-5", "gpt-4.1")[i % 3],
            client=("claude-cli", "openai-python")[i % 2],
            provider="openai",
            status="ok" if i % 50 else "error",
            http_status=200,
            prompt_tokens=120,
            completion_tokens=40,
            cost_usd=0.0004,
            latency_ms=12.5 + i % 7,
            ttft_ms=3.2,
            overhead_ms=0.04,
            memories_injected=i % 3,
            trace_id=f"{i + 1:032x}",
        )
        timeline = Timeline(
            recall_start=0.0001,
            recall_end=0.0003,
            recall="hit",
            upstream_start=0.0004,
            upstream_answer=0.002,
            record_start=0.012,
            record_end=0.0121,
            incoming_traceparent=f"00-{i + 1:032x}-{i + 7:016x}-01",
            upstream_traceparent=f"00-{i + 1:032x}-{i + 9:016x}-01",
        )
        out.append((row, timeline))
    return out


def per_call_us(fn: object, items: list[tuple[RequestRow, Timeline]]) -> float:
    call = fn  # type: ignore[assignment]
    start = time.perf_counter()
    for row, timeline in items:
        call(row, timeline)  # type: ignore[operator]
    return (time.perf_counter() - start) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    n = parser.parse_args().n
    items = rows(n)
    metrics, live = GatewayMetrics(), LiveView()
    # A collector that is not there: spans queue and are dropped, the loop never waits.
    tracer = Tracer(TracingSettings("http://127.0.0.1:9/v1/traces", "bench"))
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    figures = {
        "metrics (GatewayMetrics.observe)": per_call_us(
            lambda r, t: metrics.observe(r, t.recall), items
        ),
        "live view (LiveView.observe)": per_call_us(lambda r, t: live.observe(r), items),
        "tracing, on the loop (queue the row)": per_call_us(tracer.record, items),
        "tracing, in its thread (build 4 spans)": per_call_us(tracer.spans, items),
    }
    start = time.perf_counter()
    text = metrics.exposition()
    scrape_ms = (time.perf_counter() - start) * 1000
    tracer.shutdown()
    for name, us in figures.items():
        print(f"{name:40s} {us:8.2f} µs/request")
    print(f"{'one scrape (' + str(text.count(chr(10))) + ' lines)':40s} {scrape_ms:8.2f} ms")


if __name__ == "__main__":
    main()
