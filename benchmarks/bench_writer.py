"""Push rows through the SpendWriter from an asyncio loop and measure the loop's own lag.

Usage: python benchmarks/bench_writer.py [--rows 50000] [--rate 20000] [--database-url URL]
Prints rows/s committed and the loop lag (p50/p99/max) without and with the writer running.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memproxy_cli.paths import get_paths
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.store.writer import SpendWriter

TICK_S = 0.001
RUN_ID = uuid.uuid4().hex[:8]  # rows of an earlier run in the same database are not replays


async def measure_lag(stop: asyncio.Event) -> list[float]:
    """How late each 1 ms sleep wakes up, in ms."""
    lags: list[float] = []
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags.append((time.perf_counter() - t0 - TICK_S) * 1000)
    return lags


def row(i: int, now: float) -> RequestRow:
    return RequestRow(
        request_id=f"bench-{RUN_ID}-{i}",
        started_at=now,
        ended_at=now + 0.2,
        endpoint="/v1/chat/completions",
        project=f"p{i % 7}",
        model=("gpt-4o", "claude-sonnet-4-5")[i % 2],
        provider="openai",
        status="ok" if i % 50 else "error",
        http_status=200,
        prompt_tokens=1200,
        completion_tokens=300,
        cost_usd=0.004,
        latency_ms=180.0,
    )


async def produce(writer: SpendWriter | None, total: int, rate: int) -> float:
    """Submit `total` rows at about `rate` rows/s from the loop, in 1 ms slices."""
    started = time.perf_counter()
    now = time.time()
    sent = 1 if writer is not None else 0  # the warm-up row is already written
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            r = row(sent, now)  # built either way: the gateway builds its rows on the loop too
            if writer is not None:
                writer.submit(r)
            sent += 1
        await asyncio.sleep(TICK_S)
    return time.perf_counter() - started


def summary(lags: list[float]) -> str:
    lags = sorted(lags)
    p99 = lags[int(len(lags) * 0.99) - 1]
    return f"p50 {statistics.median(lags):.2f} ms, p99 {p99:.2f} ms, max {lags[-1]:.2f} ms"


def wait_written(writer: SpendWriter, total: int) -> None:
    while writer.stats["written"] < total:
        time.sleep(0.01)


async def run(writer: SpendWriter | None, total: int, rate: int) -> tuple[float, float, str]:
    stop = asyncio.Event()
    lag_task = asyncio.create_task(measure_lag(stop))
    t0 = time.perf_counter()
    produce_s = await produce(writer, total, rate)
    if writer is not None:
        await asyncio.to_thread(wait_written, writer, total)
    done_s = time.perf_counter() - t0
    stop.set()
    return produce_s, done_s, summary(await lag_task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=12_000, help="rows/s offered by the loop")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after start-up, as a daemon may"
    )
    args = parser.parse_args()
    os.environ["MEMPROXY_HOME"] = tempfile.mkdtemp(prefix="memproxy-bench-")
    paths = get_paths().ensure()

    _, _, baseline = asyncio.run(run(None, args.rows, args.rate))
    print(f"loop lag, no writer:   {baseline}")
    writer = SpendWriter(args.database_url, paths)
    writer.start()
    # Steady state: the thread's first-time imports and migrations are behind us.
    writer.submit(row(-1, time.time()))
    wait_written(writer, 1)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    produce_s, done_s, lag = asyncio.run(run(writer, args.rows + 1, args.rate))
    writer.close()
    print(f"loop lag, with writer: {lag}")
    print(
        f"offered {args.rows / produce_s:,.0f} rows/s; committed {args.rows:,} rows in "
        f"{done_s:.2f} s = {args.rows / done_s:,.0f} rows/s; stats {writer.stats}"
    )


if __name__ == "__main__":
    main()
