"""Soak the real daemon with mixed load and report RSS over time, lost rows and leaked sockets.

Usage: python benchmarks/soak.py [--minutes 30] [--clients 8] [--report-every 30]
Load: streaming and non-streaming chat completions against a fake upstream on loopback;
10% of the clients hang up mid-stream, 5% of the calls get an upstream 500.
Prints the daemon's RSS, open fds and connections every interval; at the end the rows lost
(client-side count of answered requests vs spend rows after a drained `memproxy down`) and the
fds/connections left over once the load has stopped (compared with the start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import psutil
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
DISCONNECT_SHARE = 0.10
UPSTREAM_ERROR_SHARE = 0.05
FAIL_MARKER = "please-fail"


def fake_upstream() -> web.Application:
    """An OpenAI-compatible upstream: a few SSE chunks, or a 500 when asked to fail."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if FAIL_MARKER in json.dumps(body["messages"]):
            return web.json_response(
                {"error": {"message": "boom", "type": "server_error"}}, status=500
            )
        usage = {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
        base = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "soak reply"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events = [
            {**base, "choices": [{"index": 0, "delta": {"content": f"part{i} "}}]} for i in range(6)
        ]
        events.append({**base, "choices": [], "usage": usage})
        try:
            for event in events:
                await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                await asyncio.sleep(0.02)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the gateway hung up because its client did
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def memproxy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMPROXY_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "memproxy_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def sockets_of(proc: psutil.Process, upstream_port: int) -> Counter[str]:
    """The daemon's fds and TCP connections: from clients, pooled to the upstream, CLOSE_WAIT."""
    counts: Counter[str] = Counter()
    for conn in proc.net_connections(kind="inet"):
        counts[conn.status] += 1
        if conn.status == "ESTABLISHED":
            to_upstream = bool(conn.raddr) and conn.raddr.port == upstream_port
            counts["upstream_pool" if to_upstream else "client_conns"] += 1
    counts["fds"] = proc.num_fds()
    return counts


async def one_request(http: aiohttp.ClientSession, url: str, tally: Counter[str]) -> None:
    roll = random.random()
    stream = roll < 0.6
    content = FAIL_MARKER if roll > 1 - UPSTREAM_ERROR_SHARE else "hello soak"
    body = {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    }
    async with http.post(url + "/v1/chat/completions", json=body) as resp:
        tally["answered"] += 1  # the gateway handled it: exactly one row must exist
        tally[f"http_{resp.status}"] += 1
        if stream and resp.status == 200 and roll < DISCONNECT_SHARE:
            await resp.content.readany()  # the first bytes, then hang up mid-stream
            resp.close()
            tally["disconnects"] += 1
            return
        await resp.read()


async def client_loop(url: str, deadline: float, tally: Counter[str]) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as http:
        while time.monotonic() < deadline:
            try:
                await one_request(http, url, tally)
            except aiohttp.ClientError:
                tally["client_errors"] += 1


async def reporter(
    proc: psutil.Process, upstream_port: int, deadline: float, every: float, tally: Counter[str]
) -> list[int]:
    rss: list[int] = []
    started = time.monotonic()
    while True:
        mem = proc.memory_info().rss
        rss.append(mem)
        socks = sockets_of(proc, upstream_port)
        print(
            f"t={time.monotonic() - started:7.0f}s rss={mem / 2**20:7.1f} MiB "
            f"fds={socks['fds']:4d} "
            f"clients={socks['client_conns']:3d} upstream_pool={socks['upstream_pool']:3d} "
            f"close_wait={socks['CLOSE_WAIT']:3d} "
            f"answered={tally['answered']}",
            flush=True,
        )
        if time.monotonic() >= deadline:
            return rss
        await asyncio.sleep(min(every, max(0.0, deadline - time.monotonic())))


def rows_now(home: Path) -> int:
    """Spend rows stored so far, once the writer has flushed what is queued."""
    time.sleep(1.0)  # more than the writer's batch window
    with sqlite3.connect(home / "data" / "spend.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM request_log").fetchone()[0])


async def run(minutes: float, clients: int, every: float) -> int:
    fake = web.AppRunner(fake_upstream(), access_log=None)
    await fake.setup()
    site = web.TCPSite(fake, "127.0.0.1", 0)
    await site.start()
    upstream_port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    upstream = f"http://127.0.0.1:{upstream_port}"
    home = Path(tempfile.mkdtemp(prefix="memproxy-soak-"))
    config = home / "config.yaml"
    config.write_text(
        yaml.safe_dump({"upstreams": {"openai": upstream}, "memory": {"backend": "none"}})
    )
    up = memproxy(home, "up", "--port=0", f"--config={config}")
    if up.returncode != 0:
        print(up.stderr, file=sys.stderr)
        return 1
    status = json.loads(memproxy(home, "status", "--json").stdout)
    url, proc = status["url"], psutil.Process(status["pid"])
    tally: Counter[str] = Counter()
    warm_until = time.monotonic() + 5  # as many clients as the soak: the pools are full already
    await asyncio.gather(*(client_loop(url, warm_until, tally) for _ in range(clients)))
    tally.clear()  # warm-up rows are counted separately below
    warm_rows = rows_now(home)
    await asyncio.sleep(2)
    before = sockets_of(proc, upstream_port)
    deadline = time.monotonic() + minutes * 60
    results = await asyncio.gather(
        reporter(proc, upstream_port, deadline, every, tally),
        *(client_loop(url, deadline, tally) for _ in range(clients)),
    )
    rss = results[0]
    await asyncio.sleep(3)  # let closed connections settle
    after = sockets_of(proc, upstream_port)
    down = memproxy(home, "down")
    await fake.cleanup()
    with sqlite3.connect(home / "data" / "spend.sqlite3") as db:
        rows = db.execute("SELECT count(*) FROM request_log").fetchone()[0] - warm_rows
        by_status = dict(db.execute("SELECT status, count(*) FROM request_log GROUP BY status"))
    third = max(1, len(rss) // 3)
    early, late = sum(rss[:third]) / third, sum(rss[-third:]) / third
    print("--- soak summary ---")
    print(f"duration_min={minutes} clients={clients} down_rc={down.returncode}")
    print(
        f"requests_answered={tally['answered']} spend_rows={rows} "
        f"rows_lost={tally['answered'] - rows}"
    )
    print(f"row_statuses_incl_warmup={by_status} client_side={dict(tally)}")
    print(
        f"rss_mib first_third={early / 2**20:.1f} last_third={late / 2**20:.1f} "
        f"growth={(late - early) / 2**20:+.1f}"
    )
    for key in ("fds", "client_conns", "upstream_pool", "CLOSE_WAIT"):
        print(f"{key}: start={before[key]} end={after[key]} leaked={after[key] - before[key]}")
    shutil.rmtree(home, ignore_errors=True)
    return 0


def main() -> int:
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--report-every", type=float, default=30.0)
    args = parser.parse_args()
    return asyncio.run(run(args.minutes, args.clients, args.report_every))


if __name__ == "__main__":
    sys.exit(main())
