"""A lean OpenAI-compatible upstream for benchmarks: fixed JSON body, or SSE with 20 chunks.

Runs in its own process so it does not share the event loop of the measuring client.
Prints `listening PORT` on stdout once it accepts connections.
Usage: python benchmarks/fake_upstream.py [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import orjson
from aiohttp import web

CHUNKS = 20
_REPLY = "Noted: the project keeps its state in SQLite and caches hot rows in Redis."
_USAGE = {"prompt_tokens": 42, "completion_tokens": CHUNKS, "total_tokens": 42 + CHUNKS}
_BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _REPLY},
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }
)


def _chunk(content: str | None, usage: dict[str, int] | bool | None = False) -> bytes:
    """A chat chunk; `usage` None writes `"usage":null`, as OpenAI does in every chunk when
    the request asked for `include_usage`; False leaves the key out."""
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    event = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": choices,
    }
    if usage is not False:
        event["usage"] = usage
    return b"data: " + orjson.dumps(event) + b"\n\n"


_WORDS = (_REPLY.split() * CHUNKS)[:CHUNKS]
_STREAM = [_chunk(word + " ") for word in _WORDS]
_STREAM_NULL_USAGE = [_chunk(word + " ", None) for word in _WORDS]
_USAGE_CHUNK = _chunk(None, _USAGE)
_DONE = b"data: [DONE]\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=_BODY, content_type="application/json")
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    for chunk in _STREAM_NULL_USAGE if include_usage else _STREAM:
        await out.write(chunk)
    if include_usage:
        await out.write(_USAGE_CHUNK)
    await out.write(_DONE)
    await out.write_eof()
    return out


async def listen(app: web.Application, port: int) -> None:
    """Serve `app` on 127.0.0.1:`port`, print `listening PORT`, then run until stopped."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"listening {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def run_server(server: Coroutine[Any, Any, None]) -> None:
    """Run a server coroutine on uvloop (when installed) until interrupted."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    run_server(listen(app, args.port))


if __name__ == "__main__":
    main()
