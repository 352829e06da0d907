"""CPU per spend row of two SQLite stores at different migrations, in interleaved batches.

Usage: python benchmarks/bench_store_ab.py [--batches 300] [--old m003_no_trace_id_index]
One store is migrated up to `--old`, the other fully; batches of 256 rows (as the gateway makes
them) go to each in turn, alternating which goes first, through `store.insert.write_batch` (the
writer thread's own call), and the CPU time of each (time.thread_time) is summed per store.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_store_growth import make_row

from memproxy_cli.paths import get_paths
from memproxy_cli.store.engine import open_engine
from memproxy_cli.store.insert import write_batch
from memproxy_cli.store.migrations import migrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--old", default="m003_no_trace_id_index", help="last migration of A")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        engines = {}
        for name, upto in (("old", args.old), ("new", None)):
            os.environ["MEMPROXY_HOME"] = str(Path(root) / name)
            engine = open_engine(None, get_paths().ensure())
            migrate(engine, upto=upto)
            engines[name] = engine
        cpu = dict.fromkeys(engines, 0.0)
        for n in range(args.batches):
            order = list(engines.items())
            if n % 2:
                order.reverse()
            for name, engine in order:
                batch = [make_row(False) for _ in range(args.batch)]
                started = time.thread_time()
                write_batch(engine, batch)
                cpu[name] += time.thread_time() - started
        rows = args.batches * args.batch
        print(f"old (up to {args.old}): {cpu['old'] / rows * 1e6:.1f} us a row")
        print(f"new (every migration): {cpu['new'] / rows * 1e6:.1f} us a row")
        print(f"new / old: {cpu['new'] / cpu['old']:.3f} over {rows:,} rows each")
        for engine in engines.values():
            engine.dispose()


if __name__ == "__main__":
    main()
