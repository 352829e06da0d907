"""Where the wall time of a memory-on request goes, step by step and thread by thread.

Fills a local store (as `run.py --sections 3`: varied turns, random unit vectors), starts the
fake upstream and one daemon per variant on a copy of the store, with the tracer of
benchmarks/recall_trace/ (its sitecustomize.py records `perf_counter_ns` and `thread_time_ns`
at each step of each recall, in the loop's thread and the reader's, and the other threads'
work). Then, like section 3, it calls direct and every daemon in turn, in blocks of sequential
calls, for several rounds, and prints per variant: added p50 / p99 (the daemon's less
direct's), and the p50 / p99 over the measured calls of each step's wall time, of the reader's
CPU and of its time waiting for a core, and each thread's CPU per call.
A variant is NAME=DIR[:KEY=VALUE,...]: DIR (may be empty) goes first on PYTHONPATH (another
checkout of the package), KEY=VALUE go into the daemon's environment
(MEMPROXY_SWITCH_INTERVAL=0.001 sets `sys.setswitchinterval` there), except `memory.KEY=VALUE`,
which go into the daemon's memory settings (`off=:memory.backend=none`: memory off).
Usage: python benchmarks/recall_wall.py [--size 100000] [--calls 1000] [--rounds 3]
           [--variant cur=] [--variant si1=:MEMPROXY_SWITCH_INTERVAL=0.001] [--store FILE]
           [--stream] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import load
import yaml
from bench_recall import add_random_vectors, fill
from load import Target
from procs import Daemon, FakeUpstream

from memproxy_cli.memory.local import LocalMemoryBackend

HERE = Path(__file__).resolve().parent
TRACER = HERE / "recall_trace"
PROJECT = "bench"


@dataclass
class Variant:
    name: str
    directory: str
    env: dict[str, str]
    memory: dict[str, Any]  # memory settings over the local store's (`memory.top_k=0`)
    daemon: Daemon | None = None
    trace: Path | None = None
    samples_ms: list[float] = field(default_factory=list)
    recalls: list[dict[str, Any]] = field(default_factory=list)
    others: list[list[Any]] = field(default_factory=list)
    threads: dict[str, list[float]] = field(default_factory=dict)  # name: [cpu ns, wait ns]
    requests: list[list[int]] = field(default_factory=list)
    calls: int = 0


def parse_variant(spec: str) -> Variant:
    name, _, rest = spec.partition("=")
    directory, _, env_text = rest.partition(":")
    env = dict(kv.split("=", 1) for kv in env_text.split(",") if kv)
    memory = {
        k.removeprefix("memory."): yaml.safe_load(v)
        for k, v in env.items()
        if k.startswith("memory.")
    }
    env = {k: v for k, v in env.items() if not k.startswith("memory.")}
    return Variant(name, directory, env, memory)


def start(variant: Variant, home: Path, store: Path, upstream: str) -> None:
    home.mkdir(parents=True)
    shutil.copyfile(store, home / "memory.sqlite3")
    variant.trace = home / "trace.json"
    saved = dict(os.environ)
    path = [str(TRACER)] + ([variant.directory] if variant.directory else [])
    if saved.get("PYTHONPATH"):
        path.append(saved["PYTHONPATH"])
    os.environ.update(variant.env)
    os.environ["PYTHONPATH"] = os.pathsep.join(path)
    os.environ["MEMPROXY_RECALL_TRACE"] = str(variant.trace)
    try:
        memory = {"backend": "local", "local": {"path": str(home / "memory.sqlite3")}}
        memory.update(variant.memory)
        variant.daemon = Daemon(home, upstream, memory)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def snapshot(variant: Variant) -> dict[str, Any]:
    """Ask the daemon's tracer for what it recorded (SIGUSR1) and read it."""
    assert variant.daemon is not None and variant.trace is not None
    done = Path(str(variant.trace) + ".done")
    before = done.read_text().count("\n") if done.exists() else 0
    os.kill(variant.daemon.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while not done.exists() or done.read_text().count("\n") == before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{variant.name}: the tracer did not answer (is it installed?)")
        time.sleep(0.05)
    data: dict[str, Any] = json.loads(variant.trace.read_text())
    return data


async def vectors_loaded(variant: Variant) -> None:
    """Call `variant` until its recalls rank vectors too (the scope's codes load in the
    background after the first recall), then until its threads are idle again."""
    assert variant.daemon is not None
    gateway = Target(f"{variant.daemon.url}/v1/chat/completions", load.headers_for(PROJECT))
    deadline = time.monotonic() + 300
    while True:
        await load.sequential_blocks([gateway], False, 10, 0)
        recalls = snapshot(variant)["recalls"]
        if recalls and "top0" in recalls[-1] and not recalls[-1].get("top_none"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{variant.name}: the scope's vectors never loaded")
        await asyncio.sleep(0.2)
    variant.daemon.wait_settled()


def thread_totals(data: dict[str, Any]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for t in data["threads"]:
        name = t["name"].rstrip("0123456789_").rstrip("-_") or t["name"]
        total = out.setdefault(name, [0.0, 0.0])
        total[0] += t["cpu_ns"]
        total[1] += t["wait_ns"]
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def steps(rec: dict[str, Any]) -> dict[str, float]:
    """One recall's steps in ms (wall, and CPU / run-queue wait where the reader ran)."""
    ms = 1e-6
    out: dict[str, float] = {"recall (loop, whole)": (rec["recall1"] - rec["recall0"]) * ms}
    if "call0" not in rec:
        return out
    c0, c1 = rec["call0"], rec["call1"]
    out["loop: before the search"] = (rec["search0"] - rec["recall0"]) * ms
    out["hop to the reader"] = (c0[0] - rec["search0"]) * ms
    out["reader: wall"] = (c1[0] - c0[0]) * ms
    out["reader: CPU"] = (c1[1] - c0[1]) * ms
    out["reader: waiting for a core"] = (c1[3] - c0[3]) * ms
    out["reader: neither (GIL, locks)"] = (
        out["reader: wall"] - out["reader: CPU"] - out["reader: waiting for a core"]
    )
    out["hop back to the loop"] = (rec["search1"] - c1[0]) * ms
    out["loop: after the search"] = (rec["recall1"] - rec["search1"]) * ms
    order = ["_query_vector", "_lexical", "top", "exact_cosines", "rank"]
    last = c0
    for name in order:
        if name + "0" not in rec:
            continue
        a, b = rec[name + "0"], rec[name + "1"]
        out[f"reader: gap before {name}"] = (a[0] - last[0]) * ms
        out[f"reader: {name} wall"] = (b[0] - a[0]) * ms
        out[f"reader: {name} CPU"] = (b[1] - a[1]) * ms
        last = b
    out["reader: after rank"] = (c1[0] - last[0]) * ms
    return out


async def measure(
    direct: Target, variants: list[Variant], calls: int, warmup: int, block: int, stream: bool
) -> list[float]:
    gateways = [
        Target(f"{v.daemon.url}/v1/chat/completions", load.headers_for(PROJECT))
        for v in variants
        if v.daemon is not None
    ]
    lat = await load.sequential_blocks([direct, *gateways], stream, calls, warmup, block)
    for variant, latency in zip(variants, lat[1:], strict=True):
        variant.samples_ms.extend(latency.samples_ms)
    return lat[0].samples_ms


def report(variants: list[Variant], direct_ms: list[float], rounds: list[dict[str, Any]]) -> None:
    d50, d99 = statistics.median(direct_ms), pct(direct_ms, 0.99)
    print(f"direct p50 {d50:.3f} ms  p99 {d99:.3f} ms  ({len(direct_ms)} calls)")
    for r in rounds:
        cells = "  ".join(f"{n} {a50:.2f}/{a99:.2f}" for n, (a50, a99) in r["added"].items())
        print(f"round {r['round']}: added p50/p99 ms: {cells}")
    names = [v.name for v in variants]
    print("\n| ms | " + " | ".join(f"{n} p50 | {n} p99" for n in names) + " |")
    print("|---|" + "---|---|" * len(names))
    rows: dict[str, list[str]] = {}
    for i, v in enumerate(variants):
        added50 = statistics.median(v.samples_ms) - d50
        added99 = pct(v.samples_ms, 0.99) - d99
        per = [steps(rec) for rec in v.recalls]
        table: dict[str, tuple[float, float]] = {"added (client)": (added50, added99)}
        table["client wall"] = (statistics.median(v.samples_ms), pct(v.samples_ms, 0.99))
        if v.requests:
            loop_cpu = [r[2] * 1e-6 for r in v.requests]
            table["loop CPU of a request (handler)"] = (
                statistics.median(loop_cpu),
                pct(loop_cpu, 0.99),
            )
        if per and "recall_cpu0" in v.recalls[0]:
            rc = [(r["recall_cpu1"] - r["recall_cpu0"]) * 1e-6 for r in v.recalls]
            table["loop CPU during the recall"] = (statistics.median(rc), pct(rc, 0.99))
        for key in per[0] if per else []:
            values = [p[key] for p in per if key in p]
            table[key] = (statistics.median(values), pct(values, 0.99))
        for name, (cpu, wait) in sorted(v.threads.items()):
            table[f"thread {name}: CPU per call"] = (cpu / v.calls * 1e-6, float("nan"))
            table[f"thread {name}: core wait per call"] = (wait / v.calls * 1e-6, float("nan"))
        for kind in sorted({o[0] for o in v.others}):
            done = [o for o in v.others if o[0] == kind]
            table[f"{kind}: runs per call"] = (len(done) / v.calls, float("nan"))
            table[f"{kind}: CPU per call"] = (
                sum(o[3] for o in done) * 1e-6 / v.calls,
                float("nan"),
            )
        writes = [o for o in v.others if o[0] == "writer"]
        if writes:
            table["writer batches per call"] = (len(writes) / v.calls, float("nan"))
            table["writer batch wall"] = (
                statistics.median([(o[2] - o[1]) * 1e-6 for o in writes]),
                pct([(o[2] - o[1]) * 1e-6 for o in writes], 0.99),
            )
            table["recalls overlapping a write"] = (overlapping(v.recalls, writes), float("nan"))
            # Whether a write was under way when the search started (a longer search is more
            # likely to meet a write that starts later, so that is not asked).
            for during, label in ((True, "a write under way"), (False, "no write under way")):
                chosen = [
                    steps(r) for r in v.recalls if "call0" in r and writing_at(r, writes) == during
                ]
                for what in ("wall", "CPU", "waiting for a core"):
                    values = [c[f"reader: {what}"] for c in chosen]
                    if values:
                        cell = (statistics.median(values), pct(values, 0.99))
                        table[f"reader: {what}, {label} at its start ({len(values)})"] = cell
        for key, cell in table.items():
            rows.setdefault(key, ["", ""] * len(variants))
            rows[key][2 * i] = f"{cell[0]:.3f}"
            rows[key][2 * i + 1] = "" if cell[1] != cell[1] else f"{cell[1]:.3f}"
    for key, cells in rows.items():
        print(f"| {key} | " + " | ".join(cells) + " |")


def overlaps(rec: dict[str, Any], writes: list[list[Any]]) -> bool:
    """Whether the writer was writing during this recall's reader call."""
    a, b = rec["call0"][0], rec["call1"][0]
    return any(o[1] < b and o[2] > a for o in writes)


def writing_at(rec: dict[str, Any], writes: list[list[Any]]) -> bool:
    """Whether the writer was writing when this recall's reader call started."""
    a = rec["call0"][0]
    return any(o[1] <= a < o[2] for o in writes)


def overlapping(recalls: list[dict[str, Any]], writes: list[list[Any]]) -> float:
    """The share of reader calls during which the writer was writing."""
    traced = [rec for rec in recalls if "call0" in rec]
    hits = sum(overlaps(rec, writes) for rec in traced)
    return hits / len(traced) if traced else float("nan")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    variants = [parse_variant(s) for s in (args.variant or ["cur="])]
    with tempfile.TemporaryDirectory(prefix="memproxy-recall-wall-") as tmp:
        root = Path(tmp)
        store = Path(args.store) if args.store else root / "store.sqlite3"
        if not store.exists():
            backend = LocalMemoryBackend(store)
            fill(backend, args.size)
            backend.close_sync()
            add_random_vectors(store)
        fake = FakeUpstream()
        try:
            for i, v in enumerate(variants):
                start(v, root / f"home-{i}-{v.name}", store, fake.base)
            for v in variants:
                assert v.daemon is not None
                v.daemon.wait_settled()
            direct = Target(f"{fake.base}/v1/chat/completions", load.headers_for(None))
            for v in variants:
                if v.memory.get("backend", "local") != "none" and v.memory.get("top_k") != 0:
                    await vectors_loaded(v)
            direct_ms: list[float] = []
            rounds = []
            for r in range(args.rounds):
                first = {v.name: snapshot(v) for v in variants}
                marks = {v.name: len(v.samples_ms) for v in variants}
                d_ms = await measure(
                    direct, variants, args.calls, args.warmup, args.block, args.stream
                )
                direct_ms.extend(d_ms)
                added = {}
                for v in variants:
                    data = snapshot(v)
                    begin = len(first[v.name]["recalls"]) + args.warmup
                    v.recalls.extend(data["recalls"][begin:])
                    since = first[v.name]["now"]
                    v.others.extend(o for o in data["others"] if o[1] >= since)
                    v.requests.extend(
                        data["requests"][len(first[v.name]["requests"]) + args.warmup :]
                    )
                    before, after = thread_totals(first[v.name]), thread_totals(data)
                    for name, (cpu, wait) in after.items():
                        cpu0, wait0 = before.get(name, [0.0, 0.0])
                        total = v.threads.setdefault(name, [0.0, 0.0])
                        total[0] += cpu - cpu0
                        total[1] += wait - wait0
                    v.calls += args.calls
                    got = v.samples_ms[marks[v.name] :]
                    added[v.name] = (
                        statistics.median(got) - statistics.median(d_ms),
                        pct(got, 0.99) - pct(d_ms, 0.99),
                    )
                rounds.append({"round": r + 1, "added": added})
            report(variants, direct_ms, rounds)
            return {
                "rounds": rounds,
                "variants": {
                    v.name: {"samples_ms": v.samples_ms, "recalls": v.recalls, "others": v.others}
                    for v in variants
                },
            }
        finally:
            for v in variants:
                if v.daemon is not None:
                    v.daemon.down()
            fake.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls a round")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", help="NAME=DIR[:KEY=VALUE,...]")
    parser.add_argument("--store", help="a store to reuse (filled here when missing)")
    parser.add_argument("--stream", action="store_true", help="time to the first chunk")
    parser.add_argument("--json", help="write the samples and the recalls' steps here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the daemons on the way out
    out = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
