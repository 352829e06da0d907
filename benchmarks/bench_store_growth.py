"""CPU per spend row as the SQLite store grows: does an insert cost the same at 1M rows as at 0?

Usage: python benchmarks/bench_store_growth.py [--rows 1000000] [--batch 256] [--every 200000]
Writes batches straight through `store.insert.write_batch` (the writer thread's own call) into a
fresh SQLite store, with request ids as the gateway makes them, and prints the CPU time per row
(process_time, not wall clock) of each stretch of `--every` rows. `--random-ids` uses fully
random ids, as memproxy did before ids were time-ordered.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memproxy_cli.gateway.exchange import new_request_id, traceparent_for
from memproxy_cli.paths import get_paths
from memproxy_cli.store.engine import open_engine
from memproxy_cli.store.insert import write_batch
from memproxy_cli.store.migrations import migrate
from memproxy_cli.store.rows import RequestRow


def make_row(random_ids: bool) -> RequestRow:
    now = time.time()
    rid = f"req_{random.getrandbits(96):024x}" if random_ids else new_request_id()
    return RequestRow(
        request_id=rid,
        started_at=now,
        ended_at=now + 0.2,
        endpoint="/v1/messages",
        project="alpha",
        user_id="alpha",
        client="claude-cli",
        trace_id=traceparent_for(None)[1],
        model="claude-sonnet-4-5",
        provider="anthropic",
        stream=True,
        http_status=200,
        prompt_tokens=1200,
        completion_tokens=300,
        cost_usd=0.0081,
        latency_ms=812.0,
        ttft_ms=230.0,
        overhead_ms=0.4,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--every", type=int, default=200_000)
    parser.add_argument("--random-ids", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        import os

        os.environ["MEMPROXY_HOME"] = home
        paths = get_paths().ensure()
        engine = open_engine(None, paths)
        migrate(engine)
        written, stretch_cpu, stretch_rows = 0, 0.0, 0
        print(f"ids: {'random' if args.random_ids else 'time-ordered'}; batch {args.batch}")
        print("rows in store   CPU per row (us)")
        while written < args.rows:
            batch = [make_row(args.random_ids) for _ in range(args.batch)]
            started = time.process_time()
            write_batch(engine, batch)
            stretch_cpu += time.process_time() - started
            written += len(batch)
            stretch_rows += len(batch)
            if stretch_rows >= args.every or written >= args.rows:
                print(f"{written:>13,}   {stretch_cpu / stretch_rows * 1e6:8.1f}")
                stretch_cpu, stretch_rows = 0.0, 0
        engine.dispose()


if __name__ == "__main__":
    main()
