"""CPU per call of the gateway against the bare relay, in interleaved rounds, split by thread.

Starts the fake upstream, the bare relay and one daemon per variant (a variant is a name and a
directory put first on PYTHONPATH, so two checkouts of the package can be compared in one run;
`cur` is this checkout). Each round runs every target at concurrency 16 for a few seconds, in
turn, non-streaming then streaming, and a block of sequential calls to each for the added
latency. CPU comes from /proc: the whole process, and the daemon's main thread (the event loop)
apart from its other threads (the spend writer, executors). Prints the median over rounds, and
each target's CPU per call as a ratio to the bare relay's and to the first variant's from the
same round (the paired A/B figure). Every daemon is stopped at the end, Ctrl-C or SIGTERM too.
Usage: python benchmarks/cpu_split.py [--rounds 5] [--seconds 3] [--variant base=/path/to/src]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import load
import psutil
from load import Target
from procs import BareRelay, Daemon, FakeUpstream


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) CPU seconds of process `pid`."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if int(task.name) == pid:
            main += cpu
        else:
            other += cpu
    return main, other


def start_daemon(home: Path, upstream: str, pythonpath: str | None) -> Daemon:
    old = os.environ.get("PYTHONPATH")
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        return Daemon(home, upstream, {"backend": "none"})
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


async def one_rate(target: Target, pid: int, stream: bool, seconds: float) -> dict[str, float]:
    proc = psutil.Process(pid)
    t0 = proc.cpu_times()
    m0, o0 = thread_cpu_s(pid)
    rps, done = await load.throughput_counted(target, stream, 16, seconds)
    t1 = proc.cpu_times()
    m1, o1 = thread_cpu_s(pid)
    per = 1000.0 / done
    return {
        "rps": rps,
        "cpu_ms": (t1.user + t1.system - t0.user - t0.system) * per,
        "main_ms": (m1 - m0) * per,
        "other_ms": (o1 - o0) * per,
    }


async def rounds(
    targets: dict[str, tuple[Target, int]],
    direct: Target,
    n_rounds: int,
    seconds: float,
    lat_n: int,
) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {"c16": [], "c16_stream": []} for name in targets
    }
    samples: dict[str, dict[str, list[float]]] = {
        name: {"non_stream": [], "stream": []} for name in ["direct", *targets]
    }
    for r in range(n_rounds):
        order = list(targets.items())
        if r % 2:
            order.reverse()  # alternate who goes first
        for key, stream in (("c16", False), ("c16_stream", True)):
            for name, (target, pid) in order:
                runs[name][key].append(await one_rate(target, pid, stream, seconds))
        if lat_n:
            all_targets = [direct, *(t for t, _ in targets.values())]
            for label, stream in (("non_stream", False), ("stream", True)):
                lats = await load.sequential_blocks(all_targets, stream, lat_n, 20)
                for name, lat in zip(["direct", *targets], lats, strict=True):
                    samples[name][label].extend(lat.samples_ms)
        print(f"round {r + 1}/{n_rounds} done", file=sys.stderr, flush=True)
    return {"runs": runs, "samples": samples}


def summarise(result: dict[str, Any], names: list[str]) -> None:
    runs, samples = result["runs"], result["samples"]
    for key in ("c16", "c16_stream"):
        first = names[1] if len(names) > 1 else "bare"
        print(f"\n{key}: median over rounds (ratios to bare and to {first} from the same round)")
        print(
            f"{'target':>10} {'rps':>7} {'cpu ms':>7} {'main':>7} {'other':>7}"
            f" {'cpu/bare':>8} {'rps/bare':>8} {'cpu/' + first:>12}"
        )
        bare = runs["bare"][key]
        base = runs[first][key]
        for name in names:
            rs = runs[name][key]
            med = {
                f: statistics.median(x[f] for x in rs)
                for f in ("rps", "cpu_ms", "main_ms", "other_ms")
            }
            cpu_ratio = statistics.median(
                x["cpu_ms"] / b["cpu_ms"] for x, b in zip(rs, bare, strict=True)
            )
            rps_ratio = statistics.median(
                x["rps"] / b["rps"] for x, b in zip(rs, bare, strict=True)
            )
            paired = statistics.median(
                x["cpu_ms"] / b["cpu_ms"] for x, b in zip(rs, base, strict=True)
            )
            print(
                f"{name:>10} {med['rps']:7.0f} {med['cpu_ms']:7.3f} {med['main_ms']:7.3f}"
                f" {med['other_ms']:7.3f} {cpu_ratio:8.2f} {rps_ratio:8.2f} {paired:12.3f}"
            )
    if not samples["direct"]["non_stream"]:
        return
    for label in ("non_stream", "stream"):
        d = samples["direct"][label]
        d50, d99 = statistics.median(d), load.percentile(d, 0.99)
        print(f"\nadded latency, {label} (stream = time to first chunk), n={len(d)} each")
        bare_99 = load.percentile(samples["bare"][label], 0.99) - d99
        for name in names:
            s = samples[name][label]
            a50, a99 = statistics.median(s) - d50, load.percentile(s, 0.99) - d99
            print(
                f"{name:>10} added p50 {a50:6.3f} ms  p99 {a99:6.3f} ms"
                f"  p99/bare {a99 / bare_99:5.2f}"
            )


async def main_async(args: argparse.Namespace) -> None:
    fake = FakeUpstream()
    bare = BareRelay(fake.base)
    daemons: list[Daemon] = []
    try:
        with tempfile.TemporaryDirectory(prefix="memproxy-cpu-") as tmp, _stopping(daemons):
            targets: dict[str, tuple[Target, int]] = {
                "bare": (
                    Target(f"{bare.base}/v1/chat/completions", load.headers_for(None)),
                    bare.proc.pid,
                )
            }
            for spec in args.variant or ["cur="]:
                name, _, path = spec.partition("=")
                daemon = start_daemon(Path(tmp) / name, fake.base, path or None)
                daemons.append(daemon)
                daemon.wait_settled()
                url = f"{daemon.url}/v1/chat/completions"
                targets[name] = (Target(url, load.headers_for("bench")), daemon.pid)
            direct = Target(f"{fake.base}/v1/chat/completions", load.headers_for(None))
            result = await rounds(targets, direct, args.rounds, args.seconds, args.latency)
            summarise(result, list(targets))
    finally:
        bare.close()
        fake.close()


@contextlib.contextmanager
def _stopping(daemons: list[Daemon]) -> Iterator[None]:
    """Stop every daemon in `daemons` on the way out, while their homes still exist (the
    temporary directory is removed after this exits)."""
    try:
        yield
    finally:
        for daemon in daemons:
            try:
                daemon.down()
            except Exception as exc:  # stop the others anyway
                print(f"could not stop daemon {daemon.pid}: {exc}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--latency", type=int, default=400, help="sequential calls per round")
    parser.add_argument("--variant", action="append", help="NAME=DIR (DIR first on PYTHONPATH)")
    args = parser.parse_args()
    # A SIGTERM (timeout, a killed job) unwinds like Ctrl-C, so the daemons are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import uvloop

    uvloop.install()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
