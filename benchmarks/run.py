"""The gateway against a bare upstream, side by side: latency, throughput, memory, RSS, CLI start.

Starts benchmarks/fake_upstream.py in its own process and the real daemon with `memproxy up`
in a temporary MEMPROXY_HOME, measures from this process with a keep-alive aiohttp client,
prints one report and optionally writes the figures as JSON.
With `--peer litellm` it also measures LiteLLM's proxy (benchmarks/peer.py installs it into its
own venv at the version uv.lock pins, if missing) and prints the figures side by side.
Usage: python benchmarks/run.py [--quick] [--json FILE] [--sections 3] [--sizes 100000]
       [--peer litellm]
(sections 1, 2, 4 and 5 share one daemon run, so choosing any of them runs all four)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import cli_start
import load
import peer
import report
from bench_recall import add_random_vectors, fill
from load import Target
from procs import BareRelay, Daemon, FakeUpstream

from memproxy_cli.memory.local import LocalMemoryBackend

PROJECT = "bench"
ALL_SECTIONS = frozenset({1, 2, 3, 4, 5})
BASELINE_SECTIONS = frozenset({1, 2, 4, 5})  # one daemon run measures all four


@dataclass(frozen=True)
class Plan:
    latency_n: int
    warmup: int
    throughput_s: float
    soak_total: int
    soak_concurrency: int
    sizes: tuple[int, ...]
    up_repeats: int
    cli_repeats: int
    peer_latency_n: int  # the peer is ~30x slower a call: fewer sequential calls
    peer_starts: int


FULL = Plan(2000, 200, 5.0, 100_000, 32, (1_000, 10_000, 100_000), 5, 10, 1000, 3)
QUICK = Plan(30, 5, 0.3, 400, 8, (300,), 1, 1, 20, 1)


def chat_url(base: str) -> str:
    return f"{base}/v1/chat/completions"


async def latency_pair(
    direct: Target, gateway: Target, plan: Plan, bare: Target | None = None
) -> dict[str, Any]:
    """Direct, the gateway (and the bare relay) in alternating blocks of sequential calls."""
    out: dict[str, Any] = {}
    targets = (direct, gateway) if bare is None else (direct, gateway, bare)
    for label, stream in (("non_stream", False), ("stream_ttft", True)):
        lat = await load.sequential_blocks(targets, stream, plan.latency_n, plan.warmup)
        d, g = lat[0], lat[1]
        out[label] = {
            "direct": d.summary(),
            "gateway": g.summary(),
            "added_p50_ms": round(g.p50 - d.p50, 3),
            "added_p99_ms": round(g.p99 - d.p99, 3),
        }
        if bare is not None:
            b = lat[2]
            out[label]["bare"] = b.summary()
            out[label]["bare_added_p50_ms"] = round(b.p50 - d.p50, 3)
            out[label]["bare_added_p99_ms"] = round(b.p99 - d.p99, 3)
    return out


class Measured(Protocol):
    def cpu_s(self) -> float: ...


async def _rate(
    target: Target, proc: Measured | None, stream: bool, concurrency: int, seconds: float
) -> tuple[float, float | None]:
    """(requests/s, CPU ms per request of `proc`) for one throughput run."""
    cpu0 = proc.cpu_s() if proc is not None else 0.0
    rps, done = await load.throughput_counted(target, stream, concurrency, seconds)
    cpu_ms = (proc.cpu_s() - cpu0) * 1000 / done if proc is not None and done else None
    return rps, cpu_ms


async def throughput_pair(
    direct: Target,
    bare: tuple[Target, Measured],
    gateway: tuple[Target, Measured],
    plan: Plan,
    cases: tuple[tuple[int, bool], ...],
) -> dict[str, Any]:
    """Direct, the bare relay and the gateway, one after the other, per case."""
    out: dict[str, Any] = {}
    for concurrency, stream in cases:
        d, _ = await _rate(direct, None, stream, concurrency, plan.throughput_s)
        b, b_cpu = await _rate(*bare, stream, concurrency, plan.throughput_s)
        g, g_cpu = await _rate(*gateway, stream, concurrency, plan.throughput_s)
        key = f"c{concurrency}" + ("_stream" if stream else "")
        out[key] = {
            "direct_rps": round(d, 1),
            "bare_rps": round(b, 1),
            "gateway_rps": round(g, 1),
            "share": round(g / d, 3),
            "bare_share": round(b / d, 3),
            "share_of_bare": round(g / b, 3),
            "bare_cpu_ms": None if b_cpu is None else round(b_cpu, 3),
            "gateway_cpu_ms": None if g_cpu is None else round(g_cpu, 3),
        }
    return out


async def memories_header(gateway: Target) -> str | None:
    async with aiohttp.ClientSession() as session:
        body = load.bodies(False)[0]
        async with session.post(gateway.url, data=body, headers=gateway.headers) as resp:
            await resp.read()
            return resp.headers.get("x-memproxy-memories")


def up_times(root: Path, upstream: str, repeats: int) -> dict[str, float]:
    times = []
    for i in range(repeats):
        daemon = Daemon(root / f"up-{i}", upstream, {"backend": "none"})
        times.append(daemon.up_s)
        daemon.down()
    return {"best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3)}


async def soak(daemon: Daemon, gateway: Target, plan: Plan) -> dict[str, Any]:
    """RSS at 0, 25%, 50%, 75%, 100% of `soak_total` requests."""
    step = plan.soak_total // 4
    samples = [{"requests": 0, "rss_mb": round(daemon.rss_mb(), 1)}]
    seconds = 0.0
    for i in range(1, 5):
        seconds += await load.fixed_count(gateway, plan.soak_concurrency, step)
        samples.append({"requests": step * i, "rss_mb": round(daemon.rss_mb(), 1)})
    return {
        "concurrency": plan.soak_concurrency,
        "rps": round(step * 4 / seconds, 1),
        "samples": samples,
    }


@dataclass(frozen=True)
class Servers:
    fake: FakeUpstream
    bare: BareRelay
    bare_start_s: float

    def bare_target(self) -> tuple[Target, BareRelay]:
        return Target(chat_url(self.bare.base), load.headers_for(None)), self.bare


async def baseline(root: Path, servers: Servers, plan: Plan, results: dict[str, Any]) -> None:
    fake = servers.fake
    daemon = Daemon(root / "baseline", fake.base, {"backend": "none"})
    try:
        ready_rss = round(daemon.rss_mb(), 1)
        settle_s = round(daemon.wait_settled(), 1)
        results["daemon"] = {
            "ready_rss_mb": ready_rss,
            "settle_s": settle_s,
            "idle_rss_mb": round(daemon.rss_mb(), 1),
        }
        direct = Target(chat_url(fake.base), load.headers_for(None))
        gateway = Target(chat_url(daemon.url), load.headers_for(PROJECT))
        bare_target, bare = servers.bare_target()
        results["bare"] = {"start_s": round(servers.bare_start_s, 3), "idle_rss_mb": bare.rss_mb()}
        results["latency"] = await latency_pair(direct, gateway, plan, bare_target)
        report.latency(results["latency"])
        cases = ((16, False), (64, False), (16, True))
        results["throughput"] = await throughput_pair(
            direct, servers.bare_target(), (gateway, daemon), plan, cases
        )
        report.throughput(results["throughput"])
        results["daemon"]["rss_after_warmup_mb"] = round(daemon.rss_mb(), 1)
        results["bare"]["rss_after_load_mb"] = bare.rss_mb()
        cpu0 = daemon.cpu_s()
        results["daemon"]["soak"] = await soak(daemon, gateway, plan)
        results["daemon"]["soak"]["daemon_cpu_ms_per_request"] = round(
            (daemon.cpu_s() - cpu0) * 1000 / plan.soak_total, 3
        )
        results["daemon"]["log_bytes"] = {
            log.name: log.stat().st_size for log in sorted(daemon.home.rglob("*.log"))
        }
        results["cli"] = cli_start.measure(daemon.home, plan.cli_repeats)
    finally:
        daemon.down()


async def with_memory(root: Path, servers: Servers, plan: Plan, size: int) -> dict[str, Any]:
    fake = servers.fake
    home = root / f"memory-{size}"
    home.mkdir(parents=True)
    store_file = home / "memory.sqlite3"
    store = LocalMemoryBackend(store_file)
    started = time.perf_counter()
    fill(store, size)  # fills the "bench" scope, plus a smaller other project
    store.close_sync()
    # Every memory gets a vector, as a store the daemon has embedded does (embedding 100k turns
    # with the model takes an hour of CPU; search cost does not depend on the values).
    add_random_vectors(store_file)
    fill_s = time.perf_counter() - started
    memory = {"backend": "local", "local": {"path": str(store_file)}}
    daemon = Daemon(home, fake.base, memory)
    try:
        daemon.wait_settled()
        direct = Target(chat_url(fake.base), load.headers_for(None))
        gateway = Target(chat_url(daemon.url), load.headers_for(PROJECT))
        injected = await memories_header(gateway)
        out: dict[str, Any] = {"size": size, "fill_s": round(fill_s, 1), "injected": injected}
        out["latency"] = await latency_pair(direct, gateway, plan)
        out["throughput"] = await throughput_pair(
            direct, servers.bare_target(), (gateway, daemon), plan, ((16, False),)
        )
        return out
    finally:
        daemon.down()


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def start_bare(upstream: str) -> tuple[BareRelay, float]:
    """The bare relay and its time from spawn to the first 200 answer."""
    started = time.monotonic()
    bare = BareRelay(upstream)
    await peer.first_200(chat_url(bare.base), started + 60)
    return bare, time.monotonic() - started


async def run(
    plan: Plan, results: dict[str, Any], sections: frozenset[int], peer_name: str | None
) -> None:
    fake = FakeUpstream()
    bare, bare_start_s = await start_bare(fake.base)
    servers = Servers(fake, bare, bare_start_s)
    try:
        with tempfile.TemporaryDirectory(prefix="memproxy-bench-") as tmp:
            root = Path(tmp)
            with_baseline = bool(sections & BASELINE_SECTIONS)
            if with_baseline:
                await baseline(root, servers, plan, results)
                results["up"] = up_times(root, fake.base, plan.up_repeats)
            if peer_name is not None:  # before section 3, whose start-up work may time out
                direct = Target(chat_url(fake.base), load.headers_for(None))
                results["peer"] = await peer.measure(
                    root,
                    fake.base,
                    direct,
                    plan.peer_latency_n,
                    plan.warmup,
                    plan.throughput_s,
                    plan.peer_starts,
                )
            if 3 in sections:
                results["memory"] = []
                for size in plan.sizes:
                    results["memory"].append(await with_memory(root, servers, plan, size))
                report.memory(results["memory"])
            if with_baseline:
                report.daemon(results["daemon"], results["up"])
                report.cli(results["cli"])
            if "peer" in results:
                report.peer(results)
    finally:
        bare.close()
        fake.close()


def sections_arg(text: str) -> frozenset[int]:
    chosen = frozenset(int(s) for s in text.split(","))
    if not chosen or not chosen <= ALL_SECTIONS:
        raise argparse.ArgumentTypeError(f"sections are among {sorted(ALL_SECTIONS)}")
    return chosen


def sizes_arg(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--json", dest="json_file", help="also write the figures to this file")
    parser.add_argument(
        "--sections",
        type=sections_arg,
        default=ALL_SECTIONS,
        help="comma-separated sections to run (default all: 1,2,3,4,5)",
    )
    parser.add_argument(
        "--sizes", type=sizes_arg, help="memories in the project for section 3 (e.g. 100000)"
    )
    parser.add_argument(
        "--peer",
        choices=("litellm",),
        help="also measure this gateway (LiteLLM's proxy, installed into its own venv if missing)",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.sizes:
        plan = replace(plan, sizes=args.sizes)
    results: dict[str, Any] = {"machine": machine(), "plan": plan.__dict__, "quick": args.quick}
    report.header(results["machine"], args.quick)
    started = time.perf_counter()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(run(plan, results, args.sections, args.peer))
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(f"\ntotal benchmark time: {results['total_s']} s")
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
