"""Client side of the benchmark: sequential latency and concurrent throughput over keep-alive."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson
from bench_recall import QUESTIONS

MODEL = "gpt-4o-mini"


def bodies(stream: bool) -> list[bytes]:
    """Request bodies with varied user questions (so memory recall does real work)."""
    out = []
    for question in QUESTIONS:
        body: dict[str, object] = {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "You are a helpful coding assistant."},
                {"role": "user", "content": question},
            ],
            "max_tokens": 64,
        }
        if stream:
            body["stream"] = True
        out.append(orjson.dumps(body))
    return out


@dataclass
class Target:
    """Where requests go: the upstream directly or the gateway, and which headers they carry."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


def headers_for(project: str | None) -> dict[str, str]:
    out = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-not-a-real-key"}
    if project:
        out["x-memproxy-project"] = project
    return out


@dataclass
class Latency:
    samples_ms: list[float]
    overhead_ms: list[float]  # x-memproxy-overhead-ms as reported by the gateway, when present

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 0.99)

    def summary(self) -> dict[str, float | int | None]:
        reported = statistics.median(self.overhead_ms) if self.overhead_ms else None
        return {
            "n": len(self.samples_ms),
            "p50_ms": round(self.p50, 3),
            "p99_ms": round(self.p99, 3),
            "reported_overhead_p50_ms": None if reported is None else round(reported, 3),
        }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def new_session(limit: int = 100) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


class BenchError(Exception):
    """A request in the benchmark failed: the figures would be meaningless."""


async def one_call(
    session: aiohttp.ClientSession, target: Target, body: bytes, stream: bool
) -> tuple[float, float | None]:
    """(ms to the full response, or to the first SSE event when streaming; reported overhead)."""
    t0 = time.perf_counter()
    async with session.post(target.url, data=body, headers=target.headers) as resp:
        if resp.status != 200:
            raise BenchError(f"{target.url} answered {resp.status}: {(await resp.read())[:300]!r}")
        if stream:
            first = await resp.content.readany()
            elapsed = time.perf_counter() - t0
            if not first.startswith(b"data:"):
                raise BenchError(f"unexpected first stream bytes {first[:100]!r}")
            async for _ in resp.content.iter_any():
                pass
        else:
            await resp.read()
            elapsed = time.perf_counter() - t0
        reported = resp.headers.get("x-memproxy-overhead-ms")
    return elapsed * 1000.0, float(reported) if reported is not None else None


async def sequential_pair(
    direct: Target, gateway: Target, stream: bool, n: int, warmup: int, block: int = 50
) -> tuple[Latency, Latency]:
    """Sequential calls to both targets in alternating blocks, so drifting load hits both alike."""
    d, g = await sequential_blocks((direct, gateway), stream, n, warmup, block)
    return d, g


async def sequential_blocks(
    targets: Sequence[Target], stream: bool, n: int, warmup: int, block: int = 50
) -> list[Latency]:
    """`n` sequential calls to each target, taking turns in blocks of `block` calls."""
    pool = bodies(stream)
    results = [Latency([], []) for _ in targets]
    sessions = [new_session(1) for _ in targets]
    try:
        pairs = list(zip(sessions, targets, results, strict=True))
        for session, target, _ in pairs:
            for i in range(warmup):
                await one_call(session, target, pool[i % len(pool)], stream)
        for start in range(0, n, block):
            for session, target, latency in pairs:
                for i in range(start, min(n, start + block)):
                    ms, reported = await one_call(session, target, pool[i % len(pool)], stream)
                    latency.samples_ms.append(ms)
                    if reported is not None:
                        latency.overhead_ms.append(reported)
    finally:
        for session in sessions:
            await session.close()
    return results


async def throughput(target: Target, stream: bool, concurrency: int, seconds: float) -> float:
    """Completed requests per second with `concurrency` callers for `seconds` (after warm-up)."""
    return (await throughput_counted(target, stream, concurrency, seconds))[0]


async def throughput_counted(
    target: Target, stream: bool, concurrency: int, seconds: float
) -> tuple[float, int]:
    """(requests per second, requests completed) of one run, after a short warm-up."""
    pool = bodies(stream)
    async with new_session(concurrency) as session:
        await _run_for(session, target, pool, stream, concurrency, min(1.0, seconds / 4))
        started = time.perf_counter()
        done = await _run_for(session, target, pool, stream, concurrency, seconds)
        return done / (time.perf_counter() - started), done


async def _run_for(
    session: aiohttp.ClientSession,
    target: Target,
    pool: list[bytes],
    stream: bool,
    concurrency: int,
    seconds: float,
) -> int:
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency

    async def worker(w: int) -> None:
        for i in itertools.count(w):
            if time.perf_counter() >= deadline:
                return
            await one_call(session, target, pool[i % len(pool)], stream)
            counts[w] += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return sum(counts)


async def fixed_count(target: Target, concurrency: int, total: int) -> float:
    """Send `total` non-streaming requests with `concurrency` callers; returns seconds taken."""
    pool = bodies(False)
    remaining = iter(range(total))
    started = time.perf_counter()
    async with new_session(concurrency) as session:

        async def worker() -> None:
            for i in remaining:
                await one_call(session, target, pool[i % len(pool)], False)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started
