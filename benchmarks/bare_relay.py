"""The floor the gateway is measured against: the least an aiohttp relay can do per call.

Same stack as the daemon (aiohttp server, one keep-alive aiohttp client session, uvloop), no
routing, no accounting, no logging, no memory: read the body, POST it upstream, relay the
answer (whole, or SSE chunk by chunk). Prints `listening PORT` once it accepts connections.
Usage: python benchmarks/bare_relay.py UPSTREAM_BASE [--port 0]
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from fake_upstream import listen, run_server

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session = request.app[SESSION]
    url = request.app[UPSTREAM] + request.path
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.content_type != "text/event-stream":
            return web.Response(
                status=resp.status, body=await resp.read(), content_type=resp.content_type
            )
        out = web.StreamResponse(status=resp.status)
        out.content_type = "text/event-stream"
        await out.prepare(request)
        async for chunk in resp.content.iter_any():
            await out.write(chunk)
        await out.write_eof()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("upstream")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = web.Application()
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.router.add_post("/v1/chat/completions", relay)

    async def client(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(client)
    run_server(listen(app, args.port))


if __name__ == "__main__":
    main()
