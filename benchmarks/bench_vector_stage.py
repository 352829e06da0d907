"""The vector-candidate stage of local recall (ScopeVectors.top), this version against another.

Both versions of memory/scope_vectors.py (this tree's and the one at git revision --against)
hold the same scope of random unit vectors (search cost does not depend on their values) and
answer the same questions, alternating call by call: CPU time per call on this thread, p50 and
p99, and whether both returned the same rowids. Then each part of this version apart: the sign
distances, the cut-off, the int8 cosines of the shortlist.
Usage: python benchmarks/bench_vector_stage.py [--size 100000] [--calls 600] [--against main]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from memproxy_cli.memory import scope_vectors
from memproxy_cli.memory.embeddings import DIM

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = 50  # local_search.CANDIDATES
T = TypeVar("T")


def version_at(revision: str, where: Path) -> ModuleType:
    """memory/scope_vectors.py as it was at `revision`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:memproxy_cli/memory/scope_vectors.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = where / "scope_vectors_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("scope_vectors_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def loaded(module: Any, vectors: np.ndarray, pool: ThreadPoolExecutor) -> Any:
    rows = [(i + 1, vectors[i].tobytes()) for i in range(len(vectors))]

    def load(scope: str) -> tuple[int, int, Any]:
        return 0, len(rows), (rows[i : i + 4096] for i in range(0, len(rows), 4096))

    index = module.ScopeVectors(pool, load)
    assert index.top("bench", vectors[0], 5) is None
    pool.submit(lambda: None).result()
    return index


def cpu_ms(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`fn(*args)` and its CPU ms on this thread."""
    t0 = time.thread_time()
    result = fn(*args)
    return result, (time.thread_time() - t0) * 1000


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered):.3f} / {p99:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=600, help="calls of each version")
    parser.add_argument("--against", default="main", help="git revision of the other version")
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((args.size, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    questions = rng.standard_normal((100, DIM)).astype(np.float32)
    questions /= np.linalg.norm(questions, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(1) as pool:
        before = loaded(version_at(args.against, Path(tmp)), vectors, pool)
        now = loaded(scope_vectors, vectors, pool)
        times: dict[str, list[float]] = {args.against: [], "this tree": []}
        same = 0
        for call in range(args.calls):
            query = questions[call % len(questions)]
            order = [(args.against, before), ("this tree", now)]
            found: dict[str, Any] = {}
            for name, index in order if call % 2 == 0 else order[::-1]:
                t0 = time.thread_time()
                found[name] = index.top("bench", query, CANDIDATES)
                times[name].append((time.thread_time() - t0) * 1000)
            same += set(found[args.against]) == set(found["this tree"])
        print(f"{args.size} vectors, {args.calls} calls of each, alternating (CPU per call)")
        for name, samples in times.items():
            print(f"  top(), {name:10}: p50 / p99 {figures(samples)}")
        print(f"  the same {CANDIDATES} rowids in {same} of {args.calls} calls")
        codes = now._scopes["bench"]
        count = max(scope_vectors.SHORTLIST_MIN, int(args.size * scope_vectors.SHORTLIST_SHARE))
        parts: dict[str, list[float]] = {"sign distances": [], "cut-off": [], "int8 cosines": []}
        lengths = []
        for call in range(args.calls):
            query = questions[call % len(questions)]
            distance, ms = cpu_ms(scope_vectors._sign_distances, codes.signs, codes.size, query)
            parts["sign distances"].append(ms)
            shortlist, ms = cpu_ms(scope_vectors._within_cutoff, distance, count)
            parts["cut-off"].append(ms)
            parts["int8 cosines"].append(
                cpu_ms(scope_vectors._int8_cosines, codes.small, shortlist, query)[1]
            )
            lengths.append(len(shortlist))
        print(f"  this tree's parts (shortlist of {statistics.median(lengths):.0f} codes, median):")
        for name, samples in parts.items():
            print(f"    {name:15} p50 / p99 {figures(samples)}")


if __name__ == "__main__":
    sys.exit(main())
